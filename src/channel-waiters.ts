// Those waiting for the broker to hear a channel: the hub's subscribe (a first subscriber joining) and, on a Redis
// Cluster, a publish redirected to a slot's new owner. Each waits for one answer per channel, the next one: heard
// (resolved) or refused (rejected with why). One small part so that both brokers settle waiters alike.

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export class ChannelWaiters {
  private readonly waiting = new Map<string, Waiter[]>();

  /** A promise that settles with the channel's next answer. */
  wait(channel: string): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const list = this.waiting.get(channel);
    if (list === undefined) this.waiting.set(channel, [{ resolve, reject }]);
    else list.push({ resolve, reject });
    return promise;
  }

  /** Answers everyone waiting for the channel: heard when `error` is undefined, else refused with it. */
  settle(channel: string, error: Error | undefined): void {
    const list = this.waiting.get(channel);
    if (list === undefined) return;
    this.waiting.delete(channel);
    for (const waiter of list) {
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
  }

  /** Refuses everyone waiting, for any channel, with `error` (the connection is gone). */
  settleAll(error: Error): void {
    for (const channel of [...this.waiting.keys()]) this.settle(channel, error);
  }
}
