-- Helpers shared by every room script; redis.go prepends this file to each of them.
--
-- KEYS[1]  the room hash (layout in redis.go)
-- ARGV[1]  key prefix, ARGV[2] room id, ARGV[3] now (Unix ms), ARGV[4] room TTL (ms);
--          script arguments follow from ARGV[5].
--
-- With call events on (webhooks), KEYS[2] is the outbox stream, KEYS[3] its dropped counter,
-- and the last two ARGV are the call's event id base and the outbox bound.
--
-- A script returns {status, timer adds, timer removals, data...}: status is "ok" or an error
-- code, timer adds a flat list of name, due (ms), removals a list of names. The caller applies
-- the timer changes to the timers ZSET afterwards, because that key lives in another slot.

local K = KEYS[1]
local PREFIX, ROOM, NOW, ROOM_TTL = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local tadd, trem = {}, {}
local OUTBOX, DROPPED, EVENT_ID, OUTBOX_MAX, emitted = KEYS[2], KEYS[3], nil, 0, 0
if OUTBOX then EVENT_ID, OUTBOX_MAX = ARGV[#ARGV - 1], tonumber(ARGV[#ARGV]) end

local function get(f)
  local v = redis.call('HGET', K, f)
  if v == false then return nil end
  return v
end

local function num(f)
  return tonumber(redis.call('HGET', K, f) or '0')
end

-- mf names a member field.
local function mf(peer, f)
  return 'm:' .. peer .. ':' .. f
end

local function members()
  local t = {}
  local s = get('peers')
  if s then
    for p in string.gmatch(s, '%S+') do t[#t + 1] = p end
  end
  return t
end

local function contains(list, x)
  for _, v in ipairs(list) do
    if v == x then return true end
  end
  return false
end

local function hdel(fields)
  for i = 1, #fields, 200 do
    redis.call('HDEL', K, unpack(fields, i, math.min(i + 199, #fields)))
  end
end

-- emit records a call event about peer in the outbox, in the step that causes it; extra is a
-- flat list of more fields. When the outbox is full the oldest entries go, counted in DROPPED.
local function emit(typ, peer, extra)
  if not OUTBOX then return end
  emitted = emitted + 1
  local n = redis.call('XLEN', OUTBOX)
  if n >= OUTBOX_MAX then redis.call('INCRBY', DROPPED, n - OUTBOX_MAX + 1) end
  local f = {'id', EVENT_ID .. '-' .. emitted, 't', typ, 'r', ROOM, 'ts', NOW, 'p', peer,
    's', get(mf(peer, 'sub')) or ''}
  for _, v in ipairs(extra or {}) do f[#f + 1] = v end
  redis.call('XADD', OUTBOX, 'MAXLEN', OUTBOX_MAX, '*', unpack(f))
end

local function leaseTimer(peer, gen)
  return 'L|' .. ROOM .. '|' .. peer .. '|' .. gen
end

-- queue appends "event\nbody" to peer's queue under its next server seq and publishes it to the
-- member's instance while it is connected.
local function queue(peer, entry)
  local seq = redis.call('HINCRBY', K, mf(peer, 'last'), 1)
  redis.call('HSET', K, 'q:' .. peer .. ':' .. seq, entry)
  local inst = get(mf(peer, 'inst'))
  if inst then
    redis.call('PUBLISH', PREFIX .. 'inst:' .. inst, ROOM .. '\n' .. peer .. '\n' .. seq .. '\n' .. entry)
  end
  return seq
end

local function backlogFull(peer, max)
  return num(mf(peer, 'last')) - num(mf(peer, 'ack')) >= max
end

-- Outstanding offers of a member: m:<peer>:offer lists their targets, " t1 t2 " ("*": its
-- held offer, whoever gets it; "1", written by earlier versions: any target).
local function offerHas(from, to)
  local s = get(mf(from, 'offer'))
  if not s then return false end
  return s == '1' or string.find(s, ' * ', 1, true) ~= nil or string.find(s, ' ' .. to .. ' ', 1, true) ~= nil
end

local function offerAdd(from, to)
  local s = get(mf(from, 'offer'))
  if not s or s == '1' then s = ' ' end
  if not string.find(s, ' ' .. to .. ' ', 1, true) then redis.call('HSET', K, mf(from, 'offer'), s .. to .. ' ') end
end

local function offerDel(from, to)
  local s = get(mf(from, 'offer'))
  if not s then return end
  if s ~= '1' then
    local i = string.find(s, ' ' .. to .. ' ', 1, true)
    if not i then return end
    s = string.sub(s, 1, i) .. string.sub(s, i + #to + 2)
  end
  if s == '1' or s == ' ' then redis.call('HDEL', K, mf(from, 'offer')) else redis.call('HSET', K, mf(from, 'offer'), s) end
end

-- dropHeld deletes the held offer and returns its sender (nil if none).
local function dropHeld()
  local from = get('h:from')
  if not from then return nil end
  local f = {'h:from', 'h:n', 'h:exp', 'h:at'}
  for i = 1, num('h:n') do f[#f + 1] = 'h:' .. i end
  hdel(f)
  trem[#trem + 1] = 'H|' .. ROOM .. '|' .. num('h:gen')
  return from
end

-- expireHeld drops the held offer and tells its sender.
local function expireHeld()
  local at = num('h:at')
  local from = dropHeld()
  if from and get(mf(from, 'role')) then
    emit('offer.expired', from, {'h', NOW - at})
    redis.call('HDEL', K, mf(from, 'offer'))
    queue(from, 'expired\n{"what":"offer"}')
  end
end

local MEMBER_FIELDS = {'role', 'tok', 'inst', 'conn', 'gen', 'next', 'last', 'ack', 'offer', 'nonce', 'away',
  'sub', 'meta'}

-- removeMember deletes peer with everything it owns; the others get "peer-left".
local function removeMember(peer, reason)
  emit('peer.left', peer, {'why', reason})
  if get('h:from') == peer then dropHeld() end
  trem[#trem + 1] = leaseTimer(peer, num(mf(peer, 'gen')))
  local f = {}
  for _, x in ipairs(MEMBER_FIELDS) do f[#f + 1] = mf(peer, x) end
  for s = num(mf(peer, 'ack')) + 1, num(mf(peer, 'last')) do f[#f + 1] = 'q:' .. peer .. ':' .. s end
  local nonce = get(mf(peer, 'nonce'))
  if nonce then f[#f + 1] = 'n:' .. nonce end
  hdel(f)
  local rest = {}
  for _, p in ipairs(members()) do
    if p ~= peer then
      rest[#rest + 1] = p
      offerDel(p, peer)
    end
  end
  if #rest == 0 then
    redis.call('DEL', K)
    return
  end
  redis.call('HSET', K, 'peers', table.concat(rest, ' '))
  local entry = 'peer-left\n{"peer":"' .. peer .. '","reason":"' .. reason .. '"}'
  for _, p in ipairs(rest) do queue(p, entry) end
end

-- evictExpired removes the members whose resume window has passed, without waiting for a sweep.
local function evictExpired()
  for _, p in ipairs(members()) do
    local away = get(mf(p, 'away'))
    if away and tonumber(away) <= NOW then removeMember(p, 'timeout') end
  end
end

-- takeover hands the membership to a new connection with a new lease.
local function takeover(peer, inst, conn, leaseDue)
  trem[#trem + 1] = leaseTimer(peer, num(mf(peer, 'gen')))
  local gen = redis.call('HINCRBY', K, mf(peer, 'gen'), 1)
  redis.call('HSET', K, mf(peer, 'inst'), inst, mf(peer, 'conn'), conn)
  redis.call('HDEL', K, mf(peer, 'away'))
  tadd[#tadd + 1] = leaseTimer(peer, gen)
  tadd[#tadd + 1] = leaseDue
end

-- membership is {peer, token, role, gen, next, ack, last, {other, role, ...}}.
local function membership(peer)
  local others = {}
  for _, p in ipairs(members()) do
    if p ~= peer then
      others[#others + 1] = p
      others[#others + 1] = get(mf(p, 'role'))
    end
  end
  return {peer, get(mf(peer, 'tok')), get(mf(peer, 'role')), num(mf(peer, 'gen')),
    num(mf(peer, 'next')), num(mf(peer, 'ack')), num(mf(peer, 'last')), others}
end

-- reply returns without touching the room; finish refreshes its TTL first (a no-op once deleted).
local function reply(status, ...)
  return {status, tadd, trem, ...}
end

local function finish(status, ...)
  redis.call('PEXPIRE', K, ROOM_TTL)
  return {status, tadd, trem, ...}
end
