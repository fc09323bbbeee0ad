// The websocket settings of the floor servers (floor.ts, protocol-floor.ts): pinghub's defaults wherever they
// change what a connection or a message costs, so that the difference measured is pinghub's own code.

export const FLOOR_WEBSOCKET_SETTINGS = {
  maxPayloadLength: 65536, // pinghub's --max-message-size default
  backpressureLimit: 1048576, // pinghub's --max-backlog default
  closeOnBackpressureLimit: true,
  idleTimeout: 30, // pinghub's --idle-timeout default
  sendPings: true,
  perMessageDeflate: false,
} as const;
