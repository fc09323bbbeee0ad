// Websocket clients for the tests: Bun's own WebSocket, wrapped so a test can wait for messages and closes
// without sleeping.

export interface Subscriber {
  ws: WebSocket;
  /** Every message received, in order. */
  messages: string[];
  /** Resolves once `count` messages have arrived in all. */
  received(count: number, timeoutMs?: number): Promise<string[]>;
  closed: Promise<CloseEvent>;
  send(message: string): void;
  close(): void;
}

export async function subscribe(url: string, options: { headers?: Record<string, string> } = {}): Promise<Subscriber> {
  // Bun's WebSocket takes headers, which lets tests send an Origin as a browser would.
  const ws = new WebSocket(url, options as unknown as string[]);
  const messages: string[] = [];
  const waiters: Array<() => void> = [];
  ws.onmessage = (event) => {
    messages.push(String(event.data));
    for (const wake of waiters.splice(0)) wake();
  };
  const closed = new Promise<CloseEvent>((resolve) => {
    ws.onclose = (event) => {
      for (const wake of waiters.splice(0)) wake();
      resolve(event);
    };
  });
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`websocket to ${url} failed to open`));
  });
  return {
    ws,
    messages,
    closed,
    send: (message) => ws.send(message),
    close: () => ws.close(),
    received(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(new Error(`got ${messages.length} of ${count} messages: ${JSON.stringify(messages).slice(0, 300)}`)),
          timeoutMs,
        );
        const check = () => {
          if (messages.length >= count) {
            clearTimeout(timer);
            resolve(messages.slice());
          } else if (ws.readyState === WebSocket.CLOSED) {
            clearTimeout(timer);
            reject(new Error(`closed after ${messages.length} of ${count} messages`));
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

/** POSTs a message and returns the response with its body read. */
export async function post(url: string, body: BodyInit | null, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: "POST", body, headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}
