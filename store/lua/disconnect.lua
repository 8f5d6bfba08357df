-- disconnect: ARGV[5] peer, [6] conn, [7] resume deadline (ms). Returns "ok" (also when conn no
-- longer owns the membership: then nothing changes).
local peer, conn, deadline = ARGV[5], ARGV[6], ARGV[7]

if not get(mf(peer, 'role')) or get(mf(peer, 'conn')) ~= conn then return reply('ok') end
redis.call('HDEL', K, mf(peer, 'inst'), mf(peer, 'conn'))
redis.call('HSET', K, mf(peer, 'away'), deadline)
tadd[#tadd + 1] = leaseTimer(peer, num(mf(peer, 'gen')))
tadd[#tadd + 1] = deadline
return finish('ok')
