-- send: ARGV[5] peer, [6] conn, [7] seq, [8] kind, [9] to ('' for the only other member),
-- [10] body, [11] held offer due (ms), [12] max held candidates, [13] max backlog,
-- [14] "1" when the prefix already holds its maximum of offers.
-- Returns status, next, held (0/1), held expiry (ms). Status is "ok", "dup", "gap",
-- "not_member" or a rejection code; a rejection consumes the seq and changes nothing else.
local peer, conn, seq, kind, to, body = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9], ARGV[10]
local heldDue, maxCandidates, maxBacklog = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
local heldFull = ARGV[14] == '1'

local list = members()
if not contains(list, peer) or get(mf(peer, 'conn')) ~= conn then
  return reply('not_member', 0, 0, 0)
end
local nextSeq = num(mf(peer, 'next'))
if seq < nextSeq then return reply('dup', nextSeq, 0, 0) end
if seq > nextSeq then return reply('gap', nextSeq, 0, 0) end
redis.call('HSET', K, mf(peer, 'next'), seq + 1)

local others = {}
for _, p in ipairs(list) do
  if p ~= peer then others[#others + 1] = p end
end

local function apply()
  if kind == 'skip' then return 'ok' end
  if kind == 'leave' then
    removeMember(peer, 'left')
    return 'ok'
  end
  if kind == 'hangup' then
    for _, p in ipairs(others) do
      if backlogFull(p, maxBacklog) then return 'backlog_full' end
    end
    local entry = 'hangup\n{"from":"' .. peer .. '"}'
    for _, p in ipairs(others) do queue(p, entry) end
    emit('call.hangup', peer)
    -- Offers between the sender and the others end; offers between two others go on.
    redis.call('HDEL', K, mf(peer, 'offer'))
    for _, p in ipairs(others) do offerDel(p, peer) end
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
      -- Replacing one's own held offer adds none.
      if heldFull and not get('h:from') then return 'too_many_held' end
      dropHeld()
      local gen = redis.call('HINCRBY', K, 'h:gen', 1)
      redis.call('HSET', K, 'h:from', peer, 'h:n', 1, 'h:1', 'offer\n' .. body, 'h:exp', heldDue, 'h:at', NOW)
      emit('offer.held', peer, {'e', heldDue, 'm', get(mf(peer, 'meta')) or ''})
      redis.call('HSET', K, mf(peer, 'offer'), ' * ')
      tadd[#tadd + 1] = 'H|' .. ROOM .. '|' .. gen
      tadd[#tadd + 1] = heldDue
      return 'held'
    end
    if backlogFull(target, maxBacklog) then return 'backlog_full' end
    queue(target, 'offer\n' .. body)
    offerAdd(peer, target)
    return 'ok'
  end

  if kind == 'answer' then
    if not target or not offerHas(target, peer) then return 'no_offer' end
    if backlogFull(target, maxBacklog) then return 'backlog_full' end
    offerDel(target, peer)
    offerDel(target, '*')
    queue(target, 'answer\n' .. body)
    return 'ok'
  end

  if kind == 'candidate' then
    if not target then
      if get('h:from') ~= peer then return 'no_offer' end
      local n = num('h:n')
      if n - 1 >= maxCandidates then return 'too_many_candidates' end
      redis.call('HSET', K, 'h:' .. (n + 1), 'candidate\n' .. body, 'h:n', n + 1)
      return 'held'
    end
    if backlogFull(target, maxBacklog) then return 'backlog_full' end
    queue(target, 'candidate\n' .. body)
    return 'ok'
  end
  return 'bad_kind'
end

local status = apply()
if status == 'held' then
  return finish('ok', seq + 1, 1, num('h:exp'))
end
return finish(status, seq + 1, 0, 0)
