-- join: ARGV[5] peer, [6] token, [7] nonce ('' for none), [8] instance, [9] conn,
-- [10] lease due (ms), [11] capacity, [12] required role ('' for any), [13] token subject,
-- [14] token meta claim (both kept for call events only).
-- Returns "ok" with membership(peer), retried (0/1) and what the join moved into peer's queue
-- (seq, entry, seq, entry, ... as pending returns it), or "room_full" / "role" / "peer_exists".
local peer, tok, nonce, inst, conn, leaseDue = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local capacity = tonumber(ARGV[11])
local required = ARGV[12]
local sub, meta = ARGV[13], ARGV[14]

-- The caller added the lease timer of peer (gen 1) before running this script; it is taken
-- back below whenever peer does not become a member.
local preAdded = leaseTimer(peer, 1)

evictExpired()

if nonce ~= '' then
  local earlier = get('n:' .. nonce)
  if earlier then
    if earlier ~= peer then trem[#trem + 1] = preAdded end
    takeover(earlier, inst, conn, leaseDue)
    return finish('ok', membership(earlier), 1, {})
  end
end

local list = members()
if contains(list, peer) then return finish('peer_exists') end
if #list >= capacity then
  trem[#trem + 1] = preAdded
  return finish('room_full')
end

local role = 'answerer'
if #list == 0 then role = 'caller' end
if required ~= '' and required ~= role then
  trem[#trem + 1] = preAdded
  return finish('role')
end
redis.call('HSET', K, mf(peer, 'role'), role, mf(peer, 'tok'), tok, mf(peer, 'inst'), inst,
  mf(peer, 'conn'), conn, mf(peer, 'gen'), 1, mf(peer, 'next'), 1, mf(peer, 'last'), 0, mf(peer, 'ack'), 0)
if nonce ~= '' then
  redis.call('HSET', K, mf(peer, 'nonce'), nonce, 'n:' .. nonce, peer)
end
if OUTBOX then
  redis.call('HSET', K, mf(peer, 'sub'), sub, mf(peer, 'meta'), meta)
  emit('peer.joined', peer, {'ro', role, 'm', meta})
end
list[#list + 1] = peer
redis.call('HSET', K, 'peers', table.concat(list, ' '))

local joined = 'peer-joined\n{"peer":"' .. peer .. '","role":"' .. role .. '"}'
for _, p in ipairs(list) do
  if p ~= peer then queue(p, joined) end
end

-- A held offer moves to the newcomer in the same step, so exactly one answerer gets it and a
-- candidate sent meanwhile is either among the held ones or relayed live afterwards.
local handed = {}
local from = get('h:from')
if from and from ~= peer then
  if tonumber(get('h:exp')) <= NOW then
    expireHeld()
  else
    emit('offer.answered', peer, {'c', from, 'h', NOW - num('h:at')})
    for i = 1, num('h:n') do
      local entry = get('h:' .. i)
      handed[#handed + 1] = queue(peer, entry)
      handed[#handed + 1] = entry
    end
    dropHeld()
    -- The held offer is now an offer to the newcomer.
    offerDel(from, '*')
    offerAdd(from, peer)
  end
end

return finish('ok', membership(peer), 0, handed)
