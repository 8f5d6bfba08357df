-- ack: ARGV[5] peer, [6] seq. Returns "ok" or "not_member".
-- A seq above the last assigned one raises last to it (see below).
local peer, seq = ARGV[5], tonumber(ARGV[6])

if not get(mf(peer, 'role')) then return reply('not_member') end
local ack, last = num(mf(peer, 'ack')), num(mf(peer, 'last'))
if seq <= ack then return reply('ok') end
if seq > last then
  -- The member applied numbers this store never assigned: the store went back in time (a
  -- failover to a replica that lacked the last writes). Its queue is dropped (the member got
  -- those numbers already, or drops them as duplicates) and numbering goes on after seq.
  local f = {}
  for s = ack + 1, last do f[#f + 1] = 'q:' .. peer .. ':' .. s end
  hdel(f)
  redis.call('HSET', K, mf(peer, 'ack'), seq, mf(peer, 'last'), seq)
  return finish('ok')
end
local f = {}
for s = ack + 1, seq do f[#f + 1] = 'q:' .. peer .. ':' .. s end
hdel(f)
redis.call('HSET', K, mf(peer, 'ack'), seq)
return finish('ok')
