// The websocket side of the floor servers (floor.ts, protocol-floor.ts): pinghub's defaults wherever they change
// what a connection or a message costs, so that the difference measured is pinghub's own code; a websocket
// subscribes to its path's channel, and what it sends is published to everyone there, itself included.

import type { Server, WebSocketHandler } from "bun";

export const FLOOR_WEBSOCKET_SETTINGS = {
  maxPayloadLength: 65536, // pinghub's --max-message-size default
  backpressureLimit: 1048576, // pinghub's --max-backlog default
  closeOnBackpressureLimit: true,
  idleTimeout: 30, // pinghub's --idle-timeout default
  sendPings: true,
  perMessageDeflate: false,
} as const;

/** The floor's websocket handlers; `server` is asked for at each message, once Bun.serve has returned it. */
export function floorWebsocket(server: () => Server<string>): WebSocketHandler<string> {
  return {
    ...FLOOR_WEBSOCKET_SETTINGS,
    open(ws) {
      ws.subscribe(ws.data);
    },
    message(ws, message) {
      server().publish(ws.data, message);
    },
  };
}
