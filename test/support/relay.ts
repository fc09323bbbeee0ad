// A TCP relay on loopback between a client and a server, whose connections the test can cut at will: a dropped
// connection as a client sees it on a flaky network, while the server itself stays up.

import type { Socket, TCPSocketListener } from "bun";

export interface Relay {
  port: number;
  /** Cuts every connection through the relay at once, on both sides. */
  dropAll(): void;
  /**
   * While on, every byte either way is thrown away and no connection is closed, new ones included: a network
   * partition as a client sees it, silent, with no reset.
   */
  blackhole(on: boolean): void;
  /** Connections made through the relay so far. */
  connections: number;
  /** Everything passed on from the server to the clients so far, over every connection, as text. */
  toClients: string;
  stop(): void;
}

interface Pair {
  upstream: Socket<undefined> | undefined;
  /** Bytes from the client that arrived before the upstream connection was open. */
  early: Uint8Array[];
}

export function startRelay(targetPort: number): Relay {
  const open = new Set<Socket<Pair>>();
  let connections = 0;
  let toClients = "";
  const decoder = new TextDecoder();
  let blackholed = false;
  const listener: TCPSocketListener<Pair> = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        connections++;
        client.data = { upstream: undefined, early: [] };
        open.add(client);
        Bun.connect({
          hostname: "127.0.0.1",
          port: targetPort,
          socket: {
            data: (_upstream, bytes) => {
              if (blackholed) return;
              toClients += decoder.decode(bytes, { stream: true });
              client.write(bytes);
            },
            close: () => void client.end(),
            error: () => void client.end(),
          },
        }).then(
          (upstream) => {
            client.data.upstream = upstream;
            for (const bytes of client.data.early) upstream.write(bytes);
            client.data.early = [];
          },
          () => void client.end(),
        );
      },
      data(client, bytes) {
        if (blackholed) return;
        if (client.data.upstream === undefined) client.data.early.push(new Uint8Array(bytes));
        else client.data.upstream.write(bytes);
      },
      close(client) {
        open.delete(client);
        client.data.upstream?.end();
      },
    },
  });
  return {
    port: listener.port,
    get connections() {
      return connections;
    },
    get toClients() {
      return toClients;
    },
    blackhole(on) {
      blackholed = on;
    },
    dropAll() {
      for (const client of open) {
        client.data.upstream?.terminate();
        client.terminate();
      }
      open.clear();
    },
    stop() {
      this.dropAll();
      listener.stop(true);
    },
  };
}
