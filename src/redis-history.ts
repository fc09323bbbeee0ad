// Cluster mode's history: each channel's recent messages in a Redis stream, capped at --history messages and
// expiring --history-ttl after its last message, so that a subscriber resumes on any node. One script stores
// and publishes a batch of messages together, in one round trip, so that the stream and the live messages agree.
//
// Ids are Redis stream ids of the form `INCARNATION-SEQUENCE`. The script gives every message of one stream the
// same first part, the microsecond at which the stream was created, and Redis counts the second part from 0.
// A stream that expired, or was lost with a Redis restart, starts again under a new first part: an id from
// before is recognised as unknown, never taken for a place in the new stream.

import type { Cluster, default as Redis } from "ioredis";
import { type GapReason, type Kept, parseId, type Resume } from "./history.ts";

/**
 * KEYS: stream, pub/sub channel. ARGV: cap, time to live in ms, then the messages of one batch. Stores each
 * message, then publishes the batch as one JSON array of [id, message] pairs. Returns the number of nodes.
 */
const publishScript = (publish: PublishCommand) => `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local incarnation
if #last == 0 then
  local t = redis.call('TIME')
  incarnation = t[1] .. string.format('%06d', tonumber(t[2]))
else
  incarnation = string.match(last[1][1], '^(%d+)-')
end
local batch = {}
for i = 3, #ARGV do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], incarnation .. '-*', 'm', ARGV[i])
  batch[#batch + 1] = {id, ARGV[i]}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('${publish}', KEYS[2], cjson.encode(batch))
`;

/**
 * KEYS: stream. ARGV: incarnation, sequence of the last message seen. Returns ['unknown'], ['dropped'], or
 * ['ok', id, message, id, message, ...] with the messages after it.
 */
const SINCE_SCRIPT = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return {'unknown'} end
local incarnation, lastSequence = string.match(last[1][1], '^(%d+)-(%d+)$')
if incarnation ~= ARGV[1] then return {'unknown'} end
local seen = tonumber(ARGV[2])
if seen > tonumber(lastSequence) then return {'unknown'} end
if seen == tonumber(lastSequence) then return {'ok'} end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1] .. '-' .. ARGV[2], '+')
if tonumber(string.match(entries[1][1], '-(%d+)$')) ~= seen + 1 then return {'dropped'} end
local result = {'ok'}
for _, entry in ipairs(entries) do
  result[#result + 1] = entry[1]
  result[#result + 1] = entry[2][2]
end
return result
`;

interface HistoryCommands {
  pinghubPublish(stream: string, channel: string, cap: number, ttlMs: number, ...messages: string[]): Promise<number>;
  pinghubSince(stream: string, incarnation: string, sequence: number): Promise<string[]>;
}

export interface RedisHistory {
  /** Stores and publishes a batch of messages; resolves with the number of nodes that had subscribers. */
  publish(key: string, messages: string[]): Promise<number>;
  since(key: string, lastId: string): Promise<Resume>;
}

/**
 * How a batch is published: PUBLISH on one Redis or through Sentinel, SPUBLISH (sharded pub/sub) on a Redis
 * Cluster, where the stream and the channel share a name, and so a slot.
 */
export type PublishCommand = "PUBLISH" | "SPUBLISH";

/** Adds the scripts to a connection (ioredis sends EVALSHA, and the script itself when Redis lacks it). */
export function redisHistory(
  connection: Redis | Cluster,
  cap: number,
  ttlMs: number,
  publish: PublishCommand = "PUBLISH",
): RedisHistory {
  connection.defineCommand("pinghubPublish", { numberOfKeys: 2, lua: publishScript(publish) });
  connection.defineCommand("pinghubSince", { numberOfKeys: 1, lua: SINCE_SCRIPT });
  const commands = connection as unknown as HistoryCommands;
  return {
    // The stream key and the pub/sub channel share a name: Redis keeps keys and channels apart.
    publish: (key, messages) => commands.pinghubPublish(key, key, cap, ttlMs, ...messages),
    async since(key, lastId) {
      const id = parseId(lastId);
      if (id === undefined || !/^\d+$/.test(id.incarnation)) return gap("unknown id");
      const reply = await commands.pinghubSince(key, id.incarnation, id.sequence);
      if (reply[0] === "unknown") return gap("unknown id");
      if (reply[0] === "dropped") return gap("messages dropped");
      const messages: Kept[] = [];
      for (let i = 1; i + 1 < reply.length; i += 2) messages.push({ id: reply[i] ?? "", message: reply[i + 1] ?? "" });
      return { kind: "messages", messages };
    },
  };
}

const gap = (reason: GapReason): Resume => ({ kind: "gap", reason });
