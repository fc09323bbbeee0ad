// The stalled herd's subscribers, in a process of their own: `count` websockets on one channel that complete
// the handshake, print "subscribed", and from then on are never read, because the benchmark stops this process
// (SIGSTOP) and kills it at the end. A stopped process reads nothing: the kernel's socket buffers fill, and then
// the server's backlog for each, as for a client that has stopped reading but not closed.
//
//   bun bench/load/stalled.ts PORT PATH COUNT

import { connectAll } from "./ws-client.ts";

const [port, path, count] = [Number(process.argv[2]), String(process.argv[3]), Number(process.argv[4])];
await connectAll({ port, count, path: () => path, channel: () => 0, handlers: { text() {} } });
process.stdout.write("subscribed\n");
// Held open until the benchmark stops, then kills, this process.
setInterval(() => {}, 1 << 30);
