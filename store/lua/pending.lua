-- pending: ARGV[5] peer, [6] after. Returns "ok" with seq, entry, seq, entry, ... or "not_member".
local peer, after = ARGV[5], tonumber(ARGV[6])

if not get(mf(peer, 'role')) then return reply('not_member') end
local from, last = math.max(after, num(mf(peer, 'ack'))) + 1, num(mf(peer, 'last'))
local out = {}
for s = from, last do
  out[#out + 1] = s
  out[#out + 1] = get('q:' .. peer .. ':' .. s) or ''
end
return reply('ok', out)
