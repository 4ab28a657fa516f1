/**
 * The Lua scripts of the Redis store, and the form events take inside Redis. Redis runs a
 * script atomically, so each script below is one step no other client can see half of.
 */
import { formatEvent } from '../sse/format.ts';
import type { HubEvent, PublishInput } from '../hub/pubsub.ts';
import { LuaScript } from './redis-client.ts';

/**
 * Lua shared by every script that publishes. ARGV[1..5] are always: key prefix, now (ms),
 * history size, trim slack, most channels kept; a script's own arguments follow from ARGV[6].
 *
 * Trimming: `XADD ... MAXLEN ~ N` would cap a stream cheaply, but it does not say what it
 * removed, and replay has to know how far back history still reaches, or it cannot tell
 * "nothing happened" from "it was trimmed away". So the script trims itself, and remembers the
 * newest id it removed (`<prefix>trimmed`, per channel): it lets a stream grow `slack` entries
 * past N, then cuts back to exactly N in one go, which keeps the cost per publish constant.
 *
 * Channels are remembered in `<prefix>channels` by their newest id; past the limit the least
 * recently published one is forgotten (its stream deleted) and `<prefix>forgotten` keeps the
 * newest id it had, so a replay on it gets `reset`, as in the in-process hub.
 */
export const LUA_LIBRARY = `
local prefix, now = ARGV[1], ARGV[2]
local keep, slack, max_channels = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function ensure_counter()
  if redis.call('SET', prefix .. 'id', now, 'NX') then redis.call('SET', prefix .. 'first-id', now) end
end

local function publish(channel, body)
  ensure_counter()
  local id = string.format('%d', redis.call('INCR', prefix .. 'id'))
  local stream = prefix .. 'stream:' .. channel
  if redis.call('EXISTS', stream) == 0 then
    -- A new stream may be a forgotten channel coming back: its old history is gone, so
    -- replays from before the newest forgotten id must get reset, not a silent gap.
    local forgotten = redis.call('GET', prefix .. 'forgotten')
    if forgotten then redis.call('HSET', prefix .. 'trimmed', channel, forgotten) end
  end
  redis.call('XADD', stream, id .. '-0', 'm', body)
  local length = redis.call('XLEN', stream)
  if length > keep + slack then
    local cut = redis.call('XRANGE', stream, '-', '+', 'COUNT', length - keep)
    local newest = tonumber(string.match(cut[#cut][1], '^%d+'))
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', newest + 1))
    redis.call('HSET', prefix .. 'trimmed', channel, string.format('%d', newest))
  end
  redis.call('ZADD', prefix .. 'channels', id, channel)
  if redis.call('ZCARD', prefix .. 'channels') > max_channels then
    local oldest = redis.call('ZPOPMIN', prefix .. 'channels')
    redis.call('DEL', prefix .. 'stream:' .. oldest[1])
    redis.call('HDEL', prefix .. 'trimmed', oldest[1])
    if tonumber(oldest[2]) > tonumber(redis.call('GET', prefix .. 'forgotten') or '0') then
      redis.call('SET', prefix .. 'forgotten', oldest[2])
    end
  end
  redis.call('PUBLISH', prefix .. 'live:' .. channel, id .. '\\n' .. body)
  return tonumber(id)
end
`;

/** ARGV[6] channel, ARGV[7] the event body. Returns the new id. */
export const PUBLISH = new LuaScript(`${LUA_LIBRARY}
return publish(ARGV[6], ARGV[7])`);

/** The newest id, where a new client starts. */
export const POSITION = new LuaScript(`${LUA_LIBRARY}
ensure_counter()
return tonumber(redis.call('GET', prefix .. 'id'))`);

/**
 * Replay after ARGV[6] on channels ARGV[7..]: the newest id, the first id since the counter
 * began, the newest forgotten id, then per channel how far it was trimmed (-1: no stream) and
 * its entries after that id. One script, so all of it describes the same instant.
 */
export const REPLAY = new LuaScript(`${LUA_LIBRARY}
ensure_counter()
local after = ARGV[6]
local result = {
  tonumber(redis.call('GET', prefix .. 'id')),
  tonumber(redis.call('GET', prefix .. 'first-id')),
  tonumber(redis.call('GET', prefix .. 'forgotten') or '0'),
}
for i = 7, #ARGV do
  local stream = prefix .. 'stream:' .. ARGV[i]
  local trimmed = -1
  if redis.call('EXISTS', stream) == 1 then
    trimmed = tonumber(redis.call('HGET', prefix .. 'trimmed', ARGV[i]) or '0')
  end
  result[#result + 1] = trimmed
  result[#result + 1] = redis.call('XRANGE', stream, '(' .. after .. '-0', '+')
end
return result`);

/** Takes the lease ARGV[6] for holder ARGV[7] for ARGV[8] ms, or renews it if already ours. */
export const LEASE = new LuaScript(`${LUA_LIBRARY}
local key = prefix .. 'lease:' .. ARGV[6]
if redis.call('SET', key, ARGV[7], 'NX', 'PX', ARGV[8]) then return 1 end
if redis.call('GET', key) == ARGV[7] then
  redis.call('PEXPIRE', key, ARGV[8])
  return 1
end
return 0`);

/** An event as it travels through Redis: in the stream entry's `m` field and after the id in a pub/sub message. */
interface EventBody {
  c: string;
  e?: string;
  d: string;
  k?: string;
}

/** The stored form of an event (JSON; absent fields stay absent). */
export function eventBody(input: PublishInput): string {
  const body: EventBody = { c: input.channel, d: input.data };
  if (input.event !== undefined) body.e = input.event;
  if (input.key !== undefined) body.k = input.key;
  return JSON.stringify(body);
}

/** Serialises a stored event once, for every subscriber in this process. */
export function toHubEvent(id: number, text: string): HubEvent {
  const body = JSON.parse(text) as EventBody;
  const frame = Buffer.from(formatEvent({ event: body.e, id: String(id), data: body.d }));
  return { id, channel: body.c, event: body.e, data: body.d, key: body.k, frame };
}
