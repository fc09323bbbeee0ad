// How a Redis broker answers a command Redis did not carry out (a publish, a history read): with Redis's own
// one-line reason when Redis refused it (out of memory, no permission), said in the log once a minute per reason;
// else with why Redis is away. Either way a BrokerUnavailable, which the doors answer with 503 or 1013.

import { ReplyError } from "ioredis";
import { BrokerUnavailable } from "./broker.ts";
import { redisReason } from "./redis-rights.ts";

export interface RefusalParts {
  /** "redis" or "redis cluster": how the refusal names what refused. */
  label: string;
  redact(text: string): string;
  warnOnce(key: string, line: string): void;
  /** Why the broker cannot carry messages now, if it cannot. */
  problem(): string | undefined;
}

/** Returns the function that turns ioredis's error into the refusal a message or a read is answered with. */
export function redisRefusal({ label, redact, warnOnce, problem }: RefusalParts): (error: Error) => Error {
  return (error) => {
    if (error instanceof ReplyError) {
      const reason = redact(redisReason(error.message));
      warnOnce(`refused ${reason}`, `cluster: ${label} refused a publish: ${reason}`);
      return new BrokerUnavailable(`${label}: ${reason}`);
    }
    return new BrokerUnavailable(problem() ?? `${label}: ${redact(error.message)}`);
  };
}
