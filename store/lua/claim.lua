-- claim: KEYS[1] the timers ZSET, ARGV[1] timer name, ARGV[2] now (ms).
-- Removes the timer if it is still due and returns 1; only the claimer fires it.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
