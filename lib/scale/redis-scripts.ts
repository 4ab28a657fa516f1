/**
 * The Lua scripts of the Redis store, and the form events take inside Redis. Redis runs a
 * script atomically, so each script below is one step no other client can see half of.
 */
import { formatEvent } from '../sse/format.ts';
import type { HubEvent, PublishInput } from '../hub/pubsub.ts';
import { LuaScript } from './redis-client.ts';

/**
 * Lua shared by every script that publishes. ARGV[1..5] are always: key prefix, now (ms),
 * history size, trim slack, and the limits (./redis-store.ts `limits`: the publishers' and the
 * public's channels, then their bytes, comma-separated); a script's own arguments follow from
 * ARGV[6].
 *
 * Trimming: `XADD ... MAXLEN ~ N` would cap a stream cheaply, but it does not say what it
 * removed, and replay has to know how far back history still reaches, or it cannot tell
 * "nothing happened" from "it was trimmed away". So the script trims itself, and remembers the
 * newest id it removed (`<prefix>trimmed`, per channel): it lets a stream grow `slack` entries
 * past N, then cuts back to exactly N in one go, which keeps the cost per publish constant.
 *
 * Channels are remembered by their newest id in one sorted set per side (lib/hub/public-share.ts):
 * `<prefix>channels` for the publishers', `<prefix>public-channels` for those only the public
 * (the chat) has written to. Past a side's limit its least recently published channel is
 * forgotten (its stream deleted) and `<prefix>forgotten` keeps the newest id it had, so a
 * replay on it gets `reset`, as in the in-process hub.
 *
 * Bytes, as in the in-process hub (lib/hub/history-budget.ts): each side has a ledger, a stream
 * `<prefix>ledger` or `<prefix>public-ledger` with one entry per stored event under the same id,
 * oldest first, and a total, `<prefix>bytes` or `<prefix>public-bytes`. An event that leaves
 * its channel's stream for any reason leaves the ledger at once (`release`), so the total is
 * exact; past a side's limit, its ledger's oldest event is evicted with its channel's older
 * events, and `trimmed` records it. An event costs its body plus 128 bytes: measured with
 * `used_memory`, stream and ledger entries together take that to within 10% for bodies of 1 to
 * 8 KiB, and less for small ones (a 100-byte body counts 245 bytes, Redis spends about 150).
 */
export const LUA_LIBRARY = `
local prefix, now = ARGV[1], ARGV[2]
local keep, slack = tonumber(ARGV[3]), tonumber(ARGV[4])
local limit = {}
for number in string.gmatch(ARGV[5], '%d+') do limit[#limit + 1] = tonumber(number) end
local sides = {
  publishers = { channels = prefix .. 'channels', ledger = prefix .. 'ledger', bytes = prefix .. 'bytes',
                 max_channels = limit[1], max_bytes = limit[3] },
  public = { channels = prefix .. 'public-channels', ledger = prefix .. 'public-ledger', bytes = prefix .. 'public-bytes',
             max_channels = limit[2], max_bytes = limit[4] },
}

local function ensure_counter()
  if redis.call('SET', prefix .. 'id', now, 'NX') then redis.call('SET', prefix .. 'first-id', now) end
end

local function cost(body)
  return #body + 128
end

-- A stream entry ({id, {'m', body}}) left its stream: it leaves its side's ledger and total.
local function release(entry)
  for _, side in pairs(sides) do
    if redis.call('XDEL', side.ledger, entry[1]) == 1 then
      redis.call('DECRBY', side.bytes, cost(entry[2][2]))
      return
    end
  end
end

-- Removes the oldest entries of a channel's stream, given in order, and records how far it goes.
local function drop(channel, entries)
  if #entries == 0 then return end
  for _, entry in ipairs(entries) do release(entry) end
  local newest = tonumber(string.match(entries[#entries][1], '^%d+'))
  redis.call('XTRIM', prefix .. 'stream:' .. channel, 'MINID', string.format('%d-0', newest + 1))
  redis.call('HSET', prefix .. 'trimmed', channel, string.format('%d', newest))
end

-- Forgets a side's least recently published channel; replays on it will get reset.
local function forget_oldest(side)
  local oldest = redis.call('ZPOPMIN', side.channels)
  local stream = prefix .. 'stream:' .. oldest[1]
  for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do release(entry) end
  redis.call('DEL', stream)
  redis.call('HDEL', prefix .. 'trimmed', oldest[1])
  if tonumber(oldest[2]) > tonumber(redis.call('GET', prefix .. 'forgotten') or '0') then
    redis.call('SET', prefix .. 'forgotten', oldest[2])
  end
end

-- Notes the channel as just published, on the writer's side unless the publishers have it.
local function remember(channel, id, writer)
  local side = sides.publishers
  if writer == sides.public and not redis.call('ZSCORE', side.channels, channel) then
    side = sides.public
  else
    -- Written by a publisher: a channel the public started is the publishers' from now on.
    redis.call('ZREM', sides.public.channels, channel)
  end
  redis.call('ZADD', side.channels, id, channel)
  if redis.call('ZCARD', side.channels) > side.max_channels then forget_oldest(side) end
end

-- Evicts the side's oldest events, with their channels' older ones, until its bytes fit.
local function enforce_budget(side)
  while tonumber(redis.call('GET', side.bytes) or '0') > side.max_bytes do
    local oldest = redis.call('XRANGE', side.ledger, '-', '+', 'COUNT', 1)[1]
    if not oldest then break end
    local channel = oldest[2][2]
    local through = string.match(oldest[1], '^%d+') .. '-0'
    drop(channel, redis.call('XRANGE', prefix .. 'stream:' .. channel, '-', through))
    -- Only if the stream lost the entry some other way (keys edited by hand): drop the record.
    if redis.call('XDEL', side.ledger, oldest[1]) == 1 then redis.call('DECRBY', side.bytes, oldest[2][4]) end
  end
end

-- Stores and publishes one event; writer is 'public' for the chat, anything else is a publisher.
local function publish(channel, body, writer)
  ensure_counter()
  local side = sides[writer] or sides.publishers
  local id = string.format('%d', redis.call('INCR', prefix .. 'id'))
  local stream = prefix .. 'stream:' .. channel
  if redis.call('EXISTS', stream) == 0 then
    -- A new stream may be a forgotten channel coming back: its old history is gone, so
    -- replays from before the newest forgotten id must get reset, not a silent gap.
    local forgotten = redis.call('GET', prefix .. 'forgotten')
    if forgotten then redis.call('HSET', prefix .. 'trimmed', channel, forgotten) end
  end
  redis.call('XADD', stream, id .. '-0', 'm', body)
  redis.call('XADD', side.ledger, id .. '-0', 'c', channel, 'b', cost(body))
  redis.call('INCRBY', side.bytes, cost(body))
  local length = redis.call('XLEN', stream)
  if length > keep + slack then drop(channel, redis.call('XRANGE', stream, '-', '+', 'COUNT', length - keep)) end
  remember(channel, id, side)
  enforce_budget(side)
  redis.call('PUBLISH', prefix .. 'live:' .. channel, id .. '\\n' .. body)
  return tonumber(id)
end
`;

/** ARGV[6] channel, ARGV[7] the event body, ARGV[8] 'public' when the chat wrote it. Returns the new id. */
export const PUBLISH = new LuaScript(`${LUA_LIBRARY}
return publish(ARGV[6], ARGV[7], ARGV[8])`);

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
