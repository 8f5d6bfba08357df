// Redis scripts of the reference server. One hash per room holds all of its state, so every
// operation is one atomic script (one round trip):
//
//   peers           member ids in join order, space-separated
//   m:<peer>:role   caller | answerer        m:<peer>:tok    resume token
//   m:<peer>:next   next client seq          m:<peer>:last   last server seq assigned
//   m:<peer>:ack    last server seq acked    m:<peer>:offer  "1" while its offer is outstanding
//   m:<peer>:nonce  join nonce               n:<nonce>       member that joined with it
//   q:<peer>:<seq>  queued "<event>\n<body>" for ack < seq <= last
//   h:from, h:n, h:<i>  the held offer (entry 1) and its early candidates
//
// Scripts return deliveries as flat triples: recipient, seq, "<event>\n<body>".

const COMMON = `
local K = KEYS[1]
local TTL = ARGV[1]
local function get(f) local v = redis.call('HGET', K, f); if v == false then return nil end; return v end
local function num(f) return tonumber(redis.call('HGET', K, f) or '0') end
local function mf(p, f) return 'm:' .. p .. ':' .. f end
local function members()
  local t = {}
  local s = get('peers')
  if s then for p in string.gmatch(s, '%S+') do t[#t + 1] = p end end
  return t
end
local function contains(l, x) for _, v in ipairs(l) do if v == x then return true end end return false end
local out = {}
local function queue(p, entry)
  local seq = redis.call('HINCRBY', K, mf(p, 'last'), 1)
  redis.call('HSET', K, 'q:' .. p .. ':' .. seq, entry)
  out[#out + 1] = p; out[#out + 1] = seq; out[#out + 1] = entry
end
local function dropHeld()
  local n = num('h:n')
  local f = {'h:from', 'h:n'}
  for i = 1, n do f[#f + 1] = 'h:' .. i end
  redis.call('HDEL', K, unpack(f))
end
`;

// join: ARGV[2] peer, [3] token, [4] nonce, [5] capacity.
// Returns {status, peer, token, role, next, {other, role, ...}, deliveries...}.
export const JOIN = COMMON + `
local peer, token, nonce, cap = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if nonce ~= '' then
  local p = get('n:' .. nonce)
  if p and get(mf(p, 'role')) then
    local others = {}
    for _, o in ipairs(members()) do
      if o ~= p then others[#others + 1] = o; others[#others + 1] = get(mf(o, 'role')) end
    end
    return {'retry', p, get(mf(p, 'tok')), get(mf(p, 'role')), num(mf(p, 'next')), others}
  end
end
local list = members()
if #list >= cap then return {'room_full'} end
local role = 'answerer'
if #list == 0 then role = 'caller' end
redis.call('HSET', K, mf(peer, 'role'), role, mf(peer, 'tok'), token, mf(peer, 'next'), 1,
  mf(peer, 'last'), 0, mf(peer, 'ack'), 0)
if nonce ~= '' then redis.call('HSET', K, 'n:' .. nonce, peer, mf(peer, 'nonce'), nonce) end
list[#list + 1] = peer
redis.call('HSET', K, 'peers', table.concat(list, ' '))
local others = {}
local joined = 'peer-joined\\n{"peer":"' .. peer .. '","role":"' .. role .. '"}'
for _, o in ipairs(list) do
  if o ~= peer then
    others[#others + 1] = o; others[#others + 1] = get(mf(o, 'role'))
    queue(o, joined)
  end
end
local from = get('h:from')
if from and from ~= peer then
  for i = 1, num('h:n') do queue(peer, get('h:' .. i)) end
  dropHeld()
end
redis.call('PEXPIRE', K, TTL)
local r = {'ok', peer, token, role, 1, others}
for _, v in ipairs(out) do r[#r + 1] = v end
return r
`;

// send: ARGV[2] peer, [3] seq, [4] kind, [5] to, [6] body, [7] max held candidates, [8] max backlog.
// Returns {status, next, held, deliveries...}.
export const SEND = COMMON + `
local peer, seq, kind, to, body = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local maxHeld, maxBacklog = tonumber(ARGV[7]), tonumber(ARGV[8])
local list = members()
if not contains(list, peer) then return {'not_member', 0, 0} end
local nextSeq = num(mf(peer, 'next'))
if seq < nextSeq then return {'dup', nextSeq, 0} end
if seq > nextSeq then return {'gap', nextSeq, 0} end
redis.call('HSET', K, mf(peer, 'next'), seq + 1)
local others = {}
for _, p in ipairs(list) do if p ~= peer then others[#others + 1] = p end end
local function full(p) return num(mf(p, 'last')) - num(mf(p, 'ack')) >= maxBacklog end

local function apply()
  if kind == 'leave' then
    if get('h:from') == peer then dropHeld() end
    local f = {}
    for _, x in ipairs({'role', 'tok', 'next', 'last', 'ack', 'offer', 'nonce'}) do f[#f + 1] = mf(peer, x) end
    for s = num(mf(peer, 'ack')) + 1, num(mf(peer, 'last')) do f[#f + 1] = 'q:' .. peer .. ':' .. s end
    local nonce = get(mf(peer, 'nonce'))
    if nonce then f[#f + 1] = 'n:' .. nonce end
    redis.call('HDEL', K, unpack(f))
    if #others == 0 then redis.call('DEL', K); return 'ok' end
    redis.call('HSET', K, 'peers', table.concat(others, ' '))
    for _, p in ipairs(others) do queue(p, 'peer-left\\n{"peer":"' .. peer .. '","reason":"left"}') end
    return 'ok'
  end
  if kind == 'hangup' then
    for _, p in ipairs(others) do if full(p) then return 'backlog_full' end end
    for _, p in ipairs(others) do queue(p, 'hangup\\n{"from":"' .. peer .. '"}') end
    for _, p in ipairs(list) do redis.call('HDEL', K, mf(p, 'offer')) end
    if get('h:from') == peer then dropHeld() end
    return 'ok'
  end
  local target
  if to ~= '' then
    if not contains(others, to) then return 'no_peer' end
    target = to
  elseif #others == 1 then
    target = others[1]
  elseif #others > 1 then
    return 'target_required'
  end
  if kind == 'offer' then
    if not target then
      dropHeld()
      redis.call('HSET', K, 'h:from', peer, 'h:n', 1, 'h:1', 'offer\\n' .. body, mf(peer, 'offer'), 1)
      return 'held'
    end
    if full(target) then return 'backlog_full' end
    queue(target, 'offer\\n' .. body)
    redis.call('HSET', K, mf(peer, 'offer'), 1)
    return 'ok'
  end
  if kind == 'answer' then
    if not target or get(mf(target, 'offer')) ~= '1' then return 'no_offer' end
    if full(target) then return 'backlog_full' end
    redis.call('HDEL', K, mf(target, 'offer'))
    queue(target, 'answer\\n' .. body)
    return 'ok'
  end
  if kind == 'candidate' then
    if not target then
      if get('h:from') ~= peer then return 'no_offer' end
      local n = num('h:n')
      if n - 1 >= maxHeld then return 'too_many_candidates' end
      redis.call('HSET', K, 'h:' .. (n + 1), 'candidate\\n' .. body, 'h:n', n + 1)
      return 'held'
    end
    if full(target) then return 'backlog_full' end
    queue(target, 'candidate\\n' .. body)
    return 'ok'
  end
  return 'bad_kind'
end

local status = apply()
local held = 0
if status == 'held' then status = 'ok'; held = 1 end
if redis.call('EXISTS', K) == 1 then redis.call('PEXPIRE', K, TTL) end
local r = {status, seq + 1, held}
for _, v in ipairs(out) do r[#r + 1] = v end
return r
`;

// ack: ARGV[2] peer, [3] seq. Returns "ok" or "not_member".
export const ACK = COMMON + `
local peer, seq = ARGV[2], tonumber(ARGV[3])
if not get(mf(peer, 'role')) then return 'not_member' end
local ack, last = num(mf(peer, 'ack')), num(mf(peer, 'last'))
if seq <= ack or seq > last then return 'ok' end
local f = {}
for s = ack + 1, seq do f[#f + 1] = 'q:' .. peer .. ':' .. s end
redis.call('HDEL', K, unpack(f))
redis.call('HSET', K, mf(peer, 'ack'), seq)
return 'ok'
`;

// pending: ARGV[2] peer, [3] after. Returns {status, seq, entry, seq, entry, ...}.
export const PENDING = COMMON + `
local peer, after = ARGV[2], tonumber(ARGV[3])
if not get(mf(peer, 'role')) then return {'not_member'} end
local r = {'ok'}
for s = math.max(after, num(mf(peer, 'ack'))) + 1, num(mf(peer, 'last')) do
  local e = get('q:' .. peer .. ':' .. s)
  if e then r[#r + 1] = s; r[#r + 1] = e end
end
return r
`;
