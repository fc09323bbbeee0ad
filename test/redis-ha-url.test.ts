// The --redis forms for Redis Sentinel and Redis Cluster: what they parse into, what may be shown of them, and a
// one-line refusal, never showing the password, for each way they can be wrong.

import { describe, expect, test } from "bun:test";
import { ConfigError } from "../src/config-error.ts";
import { parseRedisUrl } from "../src/redis-url.ts";

describe("redis+sentinel://", () => {
  test("several sentinels, the master's name, a database, credentials kept out of the display", () => {
    expect(parseRedisUrl("redis+sentinel://app:s%40cret@10.0.0.1,10.0.0.2:26380,[::1]:26381/main/3")).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "10.0.0.2", port: 26380 },
        { host: "::1", port: 26381 },
      ],
      name: "main",
      username: "app",
      password: "s@cret",
      db: 3,
      display: "redis+sentinel://app:***@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/main/3",
    });
    expect(parseRedisUrl("redis+sentinel://:pw@s1/mymaster")).toMatchObject({
      username: undefined,
      password: "pw",
      db: 0,
      display: "redis+sentinel://:***@s1:26379/mymaster/0",
    });
  });

  test.each([
    ["redis+sentinel://s1:26379", /the path must be the master's name/],
    ["redis+sentinel://s1/main/x", /the path must be the master's name/],
    ["redis+sentinel://s1,,s2/main", /a host is missing/],
    ["redis+sentinel://:hunter2@s1:99999/main", /a port is not from 1 to 65535/],
    ["redis+sentinel://:hunter2@s_1/main", /a host is not host\[:port\]/],
    ["redis+sentinel://:hunter2@s1/main?x=1", /no query/],
    ["redis+sentinel://:hunter2%zz@s1/main", /not well %-encoded/],
  ])("%s is refused: %s", (value, says) => {
    let error: unknown;
    try {
      parseRedisUrl(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(says);
    expect(message).toMatch(/expected redis\+sentinel:\/\/\[\[user\]:password@\]host/);
    expect(message).not.toContain("hunter2");
    expect(message).not.toContain("\n");
  });
});

describe("redis+cluster://", () => {
  test("a few of the cluster's nodes, no database", () => {
    expect(parseRedisUrl("redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001")).toEqual({
      kind: "cluster",
      nodes: [
        { host: "127.0.0.1", port: 7000 },
        { host: "127.0.0.1", port: 7001 },
      ],
      username: undefined,
      password: "pw",
      tls: false,
      display: "redis+cluster://:***@127.0.0.1:7000,127.0.0.1:7001",
    });
    expect(parseRedisUrl("redis+cluster://r1/")).toMatchObject({ nodes: [{ host: "r1", port: 6379 }] });
  });

  test("rediss+cluster:// is the same with TLS to every node", () => {
    expect(parseRedisUrl("rediss+cluster://u:pw@r1:7000,r2")).toEqual({
      kind: "cluster",
      nodes: [
        { host: "r1", port: 7000 },
        { host: "r2", port: 6379 },
      ],
      username: "u",
      password: "pw",
      tls: true,
      display: "rediss+cluster://u:***@r1:7000,r2:6379",
    });
  });

  test("a database number is refused: a Redis Cluster has only database 0", () => {
    expect(() => parseRedisUrl("redis+cluster://r1:7000/2")).toThrow(/a Redis Cluster has no database number/);
  });
});
