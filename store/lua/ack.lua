-- ack: ARGV[5] peer, [6] seq. Returns "ok" or "not_member".
local peer, seq = ARGV[5], tonumber(ARGV[6])

if not get(mf(peer, 'role')) then return reply('not_member') end
local ack, last = num(mf(peer, 'ack')), num(mf(peer, 'last'))
if seq <= ack or seq > last then return reply('ok') end
local f = {}
for s = ack + 1, seq do f[#f + 1] = 'q:' .. peer .. ':' .. s end
hdel(f)
redis.call('HSET', K, mf(peer, 'ack'), seq)
return finish('ok')
