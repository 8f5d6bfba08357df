-- resume: ARGV[5] peer, [6] token, [7] instance, [8] conn, [9] lease due (ms).
-- Returns "ok" with membership(peer), or "resume".
local peer, tok, inst, conn, leaseDue = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]

evictExpired()

if not contains(members(), peer) or get(mf(peer, 'tok')) ~= tok then
  return finish('resume')
end
takeover(peer, inst, conn, leaseDue)
return finish('ok', membership(peer))
