// `?last=N` on a websocket upgrade: the newest N messages the channel's history keeps, sent as ordinary frames
// (websockets keep the original protocol: no ids) before the live ones, with nothing missed or doubled between.
//
// As for an SSE resume, the websocket joins first and the history is read after, so that nothing published
// meanwhile falls between the two. On a single node the read is synchronous: the kept messages are sent and the
// websocket subscribes to its Bun topic in the same turn, before any message can come. In cluster mode the read
// is a round trip to Redis: until it is back, and until the live messages have passed the newest kept one, the
// websocket is not on its topic, and the hub hands it each message here, in JavaScript, so that a message the
// history gave is not sent again when its live copy comes late (the two come on different Redis connections).

import { type Kept, parseId, type Resume } from "./history.ts";

/** The websocket as the replay sees it: Bun's ServerWebSocket has all of this. */
export interface ReplaySocket {
  send(message: string): unknown;
  subscribe(topic: string): void;
  close(code?: number, reason?: string): void;
}

interface Waiting {
  ws: ReplaySocket;
  /** Live messages that came while the history was read; undefined once it was written. */
  held: Array<{ message: string; id: string | undefined }> | undefined;
  /** The newest message the history gave, or the channel's position: live ones up to it are already sent. */
  floor: { incarnation: string; sequence: number } | undefined;
}

export class WebsocketReplay {
  /** Websockets of each channel that get its messages from here, not yet from their topic. */
  private readonly waiting = new Map<string, Map<ReplaySocket, Waiting>>();
  private count = 0;

  /**
   * Sends `channel`'s newest kept messages that `read` gives, then puts the websocket on its topic. `unavailable`
   * closes it when the history cannot be read (cluster mode, Redis away): the client tries again.
   */
  start(
    ws: ReplaySocket,
    channel: string,
    read: Resume | Promise<Resume>,
    unavailable: (ws: ReplaySocket, error: Error) => void,
  ): void {
    if (!(read instanceof Promise)) {
      sendAll(ws, read.messages);
      ws.subscribe(channel);
      return;
    }
    const waiting: Waiting = { ws, held: [], floor: undefined };
    let sockets = this.waiting.get(channel);
    if (sockets === undefined) {
      sockets = new Map();
      this.waiting.set(channel, sockets);
    }
    sockets.set(ws, waiting);
    this.count++;
    read.then(
      (given) => {
        // Closed meanwhile: nothing to send.
        if (this.waiting.get(channel)?.get(ws) !== waiting) return;
        sendAll(ws, given.messages);
        const held = waiting.held ?? [];
        waiting.held = undefined;
        waiting.floor = given.position === undefined ? undefined : parseId(given.position);
        for (const live of held) this.pass(channel, waiting, live.message, live.id);
      },
      (error: Error) => {
        if (this.waiting.get(channel)?.get(ws) !== waiting) return;
        this.leave(ws, channel);
        unavailable(ws, error);
      },
    );
  }

  /** Hands a message to the channel's waiting websockets; called after the topic's own delivery. */
  deliver(channel: string, message: string, id: string | undefined): void {
    // One comparison per message when no websocket is waiting.
    if (this.count === 0) return;
    const sockets = this.waiting.get(channel);
    if (sockets === undefined) return;
    for (const waiting of [...sockets.values()]) {
      if (waiting.held !== undefined) waiting.held.push({ message, id });
      else this.pass(channel, waiting, message, id);
    }
  }

  /** The websocket closed: it waits no more. */
  leave(ws: ReplaySocket, channel: string): void {
    const sockets = this.waiting.get(channel);
    if (sockets?.delete(ws) !== true) return;
    this.count--;
    if (sockets.size === 0) this.waiting.delete(channel);
  }

  /**
   * One live message after the history was written: dropped if the history gave it; otherwise sent, and the
   * websocket goes onto its topic, since the live messages have passed the history and none can come twice.
   */
  private pass(channel: string, waiting: Waiting, message: string, id: string | undefined): void {
    if (this.waiting.get(channel)?.get(waiting.ws) !== waiting) {
      // Already on its topic (an earlier held message passed the history): later held ones are sent in order.
      waiting.ws.send(message);
      return;
    }
    const floor = waiting.floor;
    const parsed = id === undefined ? undefined : parseId(id);
    if (floor !== undefined && parsed?.incarnation === floor.incarnation && parsed.sequence <= floor.sequence) return;
    waiting.ws.send(message);
    this.leave(waiting.ws, channel);
    waiting.ws.subscribe(channel);
  }
}

function sendAll(ws: ReplaySocket, messages: Kept[]): void {
  for (const kept of messages) ws.send(kept.message);
}
