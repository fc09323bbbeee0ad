// Cluster mode's history: each channel's recent messages in a Redis stream, capped at --history messages and
// expiring --history-ttl after its last message, so that a subscriber resumes on any node. One script stores
// and publishes a batch of messages together, in one round trip, so that the stream and the live messages agree.
//
// Ids are Redis stream ids of the form `INCARNATION-SEQUENCE`. The script gives every message of one stream the
// same first part, the microsecond at which the stream was created, and Redis counts the second part from 0.
// A stream that expired, or was lost with a Redis restart, starts again under a new first part: an id from
// before is recognised as unknown, never taken for a place in the new stream.

import type Redis from "ioredis";
import { type GapReason, type Kept, parseId, type Resume } from "./history.ts";

/**
 * KEYS: stream, pub/sub channel. ARGV: cap, time to live in ms, then the messages of one batch. Stores each
 * message, then publishes the batch as one JSON array of [id, message] pairs. Returns the number of nodes.
 */
const PUBLISH_SCRIPT = `
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
return redis.call('PUBLISH', KEYS[2], cjson.encode(batch))
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

/**
 * KEYS: stream. ARGV: incarnation and sequence of the last message a node delivered, or '' and 0 for a stream
 * that was empty when the node subscribed. For a node catching up after losing its subscriber connection
 * (redis-catch-up.ts): returns ['empty'] when the stream is gone, else a status and every message the stream
 * still holds after that one, [status, id, message, id, message, ...]: 'ok' when they follow it without a hole,
 * 'dropped' when some after it were trimmed, 'unknown' when the stream is a new one (expired or lost since).
 */
const CATCH_UP_SCRIPT = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return {'empty'} end
local incarnation, lastSequence = string.match(last[1][1], '^(%d+)-(%d+)$')
local status = 'ok'
local entries
if ARGV[1] == '' then
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
elseif incarnation ~= ARGV[1] then
  status = 'unknown'
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
else
  local seen = tonumber(ARGV[2])
  if seen >= tonumber(lastSequence) then return {'ok'} end
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1] .. '-' .. ARGV[2], '+')
  if tonumber(string.match(entries[1][1], '-(%d+)$')) ~= seen + 1 then status = 'dropped' end
end
local result = {status}
for _, entry in ipairs(entries) do
  result[#result + 1] = entry[1]
  result[#result + 1] = entry[2][2]
end
return result
`;

/** What a node catching up is given (see CATCH_UP_SCRIPT). */
export interface CatchUpReply {
  status: "ok" | "dropped" | "unknown" | "empty";
  messages: Kept[];
}

interface HistoryCommands {
  pinghubPublish(stream: string, channel: string, cap: number, ttlMs: number, ...messages: string[]): Promise<number>;
  pinghubSince(stream: string, incarnation: string, sequence: number): Promise<string[]>;
  pinghubCatchUp(stream: string, incarnation: string, sequence: number): Promise<string[]>;
}

export interface RedisHistory {
  /** Stores and publishes a batch of messages; resolves with the number of nodes that had subscribers. */
  publish(key: string, messages: string[]): Promise<number>;
  since(key: string, lastId: string): Promise<Resume>;
  /** The id of the stream's last message, or "" when it has none: where a node starts to follow a channel. */
  position(key: string): Promise<string>;
  /** Every message still held after `lastId` ("" for all), for a node catching up. */
  catchUp(key: string, lastId: string): Promise<CatchUpReply>;
}

/** Adds the scripts to a connection (ioredis sends EVALSHA, and the script itself when Redis lacks it). */
export function redisHistory(connection: Redis, cap: number, ttlMs: number): RedisHistory {
  connection.defineCommand("pinghubPublish", { numberOfKeys: 2, lua: PUBLISH_SCRIPT });
  connection.defineCommand("pinghubSince", { numberOfKeys: 1, lua: SINCE_SCRIPT });
  connection.defineCommand("pinghubCatchUp", { numberOfKeys: 1, lua: CATCH_UP_SCRIPT });
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
    async position(key) {
      const last = (await connection.xrevrange(key, "+", "-", "COUNT", 1)) as Array<[string, string[]]>;
      return last[0]?.[0] ?? "";
    },
    async catchUp(key, lastId) {
      const id = lastId === "" ? { incarnation: "", sequence: 0 } : parseId(lastId);
      if (id === undefined) return { status: "unknown", messages: [] };
      const reply = await commands.pinghubCatchUp(key, id.incarnation, id.sequence);
      const messages: Kept[] = [];
      for (let i = 1; i + 1 < reply.length; i += 2) messages.push({ id: reply[i] ?? "", message: reply[i + 1] ?? "" });
      return { status: reply[0] as CatchUpReply["status"], messages };
    },
  };
}

const gap = (reason: GapReason): Resume => ({ kind: "gap", reason });
