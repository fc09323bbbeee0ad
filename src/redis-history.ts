// Cluster mode's history: each channel's recent messages in a Redis stream, capped at --history messages and
// expiring --history-ttl after its last message, so that a subscriber resumes on any node. One script stores
// and publishes a batch of messages together, in one round trip, so that the stream and the live messages agree.
//
// Ids are Redis stream ids of the form `INCARNATION-SEQUENCE`. The script gives every message of one stream the
// same first part, the microsecond at which the stream was created, and Redis counts the second part from 0.
// A stream that expired, or was lost with a Redis restart, starts again under a new first part: an id from
// before is recognised as unknown, never taken for a place in the new stream. A channel that has kept nothing
// still has a position, for a subscriber to resume from: an empty stream is made, whose last generated id,
// `INCARNATION-0`, stands before its first message, which Redis numbers `INCARNATION-1`.

import type Redis from "ioredis";
import { type GapReason, type Kept, parseId, type Resume } from "./history.ts";

/**
 * Lua shared by the scripts. `newest` gives the stream's newest id and whether it keeps no entry: a quiet
 * channel's stream is made empty, its last generated id `INCARNATION-0` naming the place before its first
 * message (the next that Redis gives under that incarnation is `INCARNATION-1`). `position` gives that id,
 * making the stream if there is none; an empty stream lasts the time to live after the last position it gave.
 * A Redis out of memory (maxmemory with noeviction) refuses to make it: then there is no position (false), and
 * the subscriber is served as without history rather than refused, since its live messages can still come.
 */
const SHARED_LUA = `
local function newest(key)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then return last[1][1], false end
  if redis.call('EXISTS', key) == 0 then return false, true end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1], true end
  end
  return false, true
end
local function newIncarnation()
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end
local function position(key, ttl)
  local id, empty = newest(key)
  if not id then
    id = newIncarnation() .. '-0'
    local made = redis.pcall('XADD', key, 'MAXLEN', '0', id, 'm', '')
    if type(made) == 'table' and made.err then return false end
    redis.call('PEXPIRE', key, ttl)
  elseif empty then
    redis.call('PEXPIRE', key, ttl)
  end
  return id
end
`;

/**
 * KEYS: stream, pub/sub channel. ARGV: cap, time to live in ms, then the messages of one batch. Stores each
 * message, then publishes the batch as one JSON array of [id, message] pairs. Returns the number of nodes.
 */
const PUBLISH_SCRIPT = `${SHARED_LUA}
local newestId = newest(KEYS[1])
local incarnation
if newestId then incarnation = string.match(newestId, '^(%d+)-') else incarnation = newIncarnation() end
local batch = {}
for i = 3, #ARGV do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], incarnation .. '-*', 'm', ARGV[i])
  batch[#batch + 1] = {id, ARGV[i]}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('PUBLISH', KEYS[2], cjson.encode(batch))
`;

/**
 * KEYS: stream. ARGV: incarnation, sequence of the last message seen, time to live in ms. Returns
 * [status, position, id, message, id, message, ...]: 'ok' with the messages after it; 'dropped' with every
 * message kept, when some after it are not; 'unknown' with none.
 */
const SINCE_SCRIPT = `${SHARED_LUA}
local id = newest(KEYS[1])
if not id then return {'unknown', position(KEYS[1], ARGV[3])} end
local incarnation, lastSequence = string.match(id, '^(%d+)-(%d+)$')
local seen = tonumber(ARGV[2])
if incarnation ~= ARGV[1] or seen > tonumber(lastSequence) then return {'unknown', position(KEYS[1], ARGV[3])} end
if seen == tonumber(lastSequence) then return {'ok', position(KEYS[1], ARGV[3])} end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1] .. '-' .. ARGV[2], '+')
local result = {'ok', id}
if #entries == 0 or tonumber(string.match(entries[1][1], '-(%d+)$')) ~= seen + 1 then result[1] = 'dropped' end
for _, entry in ipairs(entries) do
  result[#result + 1] = entry[1]
  result[#result + 1] = entry[2][2]
end
return result
`;

/**
 * KEYS: stream. ARGV: count, time to live in ms. Returns ['ok', position, id, message, ...] with the newest
 * `count` messages kept, oldest first.
 */
const LATEST_SCRIPT = `${SHARED_LUA}
local result = {'ok', position(KEYS[1], ARGV[2])}
local count = tonumber(ARGV[1])
if count > 0 then
  local entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', count)
  for i = #entries, 1, -1 do
    result[#result + 1] = entries[i][1]
    result[#result + 1] = entries[i][2][2]
  end
end
return result
`;

/**
 * KEYS: stream. ARGV: incarnation and sequence of the last message a node delivered, or '' and 0 for a stream
 * that was empty when the node subscribed; time to live in ms. For a node catching up after losing its subscriber
 * connection (redis-catch-up.ts): returns ['empty', position] when the stream is gone or keeps nothing (a quiet
 * channel's empty stream), with the position it stands at now (made as `since` makes one); else a status and every
 * message the stream still holds after that one, [status, id, message, id, message, ...]: 'ok' when they follow
 * it without a hole, 'dropped' when some after it were trimmed, 'unknown' when the stream is a new one (expired or
 * lost since).
 */
const CATCH_UP_SCRIPT = `${SHARED_LUA}
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return {'empty', position(KEYS[1], ARGV[3])} end
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
  /**
   * With `empty`: the stream's position now, where the node follows it from; undefined when Redis, out of memory,
   * could not make one. The other statuses give messages, which carry their ids.
   */
  position?: string | undefined;
}

interface HistoryCommands {
  pinghubPublish(stream: string, channel: string, cap: number, ttlMs: number, ...messages: string[]): Promise<number>;
  pinghubSince(stream: string, incarnation: string, sequence: number, ttlMs: number): Promise<Array<string | null>>;
  pinghubLatest(stream: string, count: number, ttlMs: number): Promise<Array<string | null>>;
  pinghubCatchUp(stream: string, incarnation: string, sequence: number, ttlMs: number): Promise<Array<string | null>>;
}

export interface RedisHistory {
  /** Stores and publishes a batch of messages; resolves with the number of nodes that had subscribers. */
  publish(key: string, messages: string[]): Promise<number>;
  /** What a subscriber that last saw `lastId` is to be given (history.ts says what a Resume holds). */
  since(key: string, lastId: string): Promise<Resume>;
  /** The newest `count` kept messages and the channel's position, for a new subscriber (0: just the position). */
  latest(key: string, count: number): Promise<Resume>;
  /** The id of the stream's last message, or "" when it has none: where a node starts to follow a channel. */
  position(key: string): Promise<string>;
  /** Every message still held after `lastId` ("" for all), for a node catching up. */
  catchUp(key: string, lastId: string): Promise<CatchUpReply>;
}

/** Adds the scripts to a connection (ioredis sends EVALSHA, and the script itself when Redis lacks it). */
export function redisHistory(connection: Redis, cap: number, ttlMs: number): RedisHistory {
  connection.defineCommand("pinghubPublish", { numberOfKeys: 2, lua: PUBLISH_SCRIPT });
  connection.defineCommand("pinghubSince", { numberOfKeys: 1, lua: SINCE_SCRIPT });
  connection.defineCommand("pinghubLatest", { numberOfKeys: 1, lua: LATEST_SCRIPT });
  connection.defineCommand("pinghubCatchUp", { numberOfKeys: 1, lua: CATCH_UP_SCRIPT });
  const commands = connection as unknown as HistoryCommands;
  return {
    // The stream key and the pub/sub channel share a name: Redis keeps keys and channels apart.
    publish: (key, messages) => commands.pinghubPublish(key, key, cap, ttlMs, ...messages),
    async since(key, lastId) {
      const id = parseId(lastId);
      // An id that is no stream id is asked about as one that matches no stream: unknown, with the position.
      const incarnation = id !== undefined && /^\d+$/.test(id.incarnation) ? id.incarnation : "";
      return resume(await commands.pinghubSince(key, incarnation, id?.sequence ?? 0, ttlMs));
    },
    // No more than the stream keeps: COUNT must be an integer Redis can read.
    latest: async (key, count) => resume(await commands.pinghubLatest(key, Math.min(count, cap), ttlMs)),
    async position(key) {
      const last = (await connection.xrevrange(key, "+", "-", "COUNT", 1)) as Array<[string, string[]]>;
      return last[0]?.[0] ?? "";
    },
    async catchUp(key, lastId) {
      const id = lastId === "" ? { incarnation: "", sequence: 0 } : parseId(lastId);
      if (id === undefined) return { status: "unknown", messages: [] };
      const reply = await commands.pinghubCatchUp(key, id.incarnation, id.sequence, ttlMs);
      if (reply[0] === "empty") return { status: "empty", messages: [], position: reply[1] ?? undefined };
      const messages: Kept[] = [];
      for (let i = 1; i + 1 < reply.length; i += 2) messages.push({ id: reply[i] ?? "", message: reply[i + 1] ?? "" });
      return { status: reply[0] as CatchUpReply["status"], messages };
    },
  };
}

/** A script's reply, [status, position, id, message, ...], as a Resume. */
function resume(reply: Array<string | null>): Resume {
  const messages: Kept[] = [];
  for (let i = 2; i + 1 < reply.length; i += 2) messages.push({ id: reply[i] ?? "", message: reply[i + 1] ?? "" });
  // No position (Redis out of memory could not make one): the subscriber has none to resume from.
  return { gap: GAPS[reply[0] ?? ""], messages, position: reply[1] ?? undefined };
}

const GAPS: Record<string, GapReason | undefined> = { unknown: "unknown id", dropped: "messages dropped" };
