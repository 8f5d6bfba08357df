-- fire: ARGV[5] timer kind ('L' or 'H'), [6] peer ('' for H), [7] gen.
-- Returns "ok" when the timer fired, "stale" when its gen is no longer current.
local kind, peer, gen = ARGV[5], ARGV[6], tonumber(ARGV[7])

if kind == 'L' then
  if get(mf(peer, 'role')) and num(mf(peer, 'gen')) == gen then
    removeMember(peer, 'timeout')
    return finish('ok')
  end
elseif kind == 'H' then
  -- The expiry check also covers a room deleted and created again, whose gens restart.
  if get('h:from') and num('h:gen') == gen and tonumber(get('h:exp')) <= NOW then
    expireHeld()
    return finish('ok')
  end
end
return reply('stale')
