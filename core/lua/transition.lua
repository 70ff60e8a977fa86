-- Apply one lifecycle event to an operation atomically, record it in the project's change
-- stream, announce it, and queue the webhook delivery the operation asked for, if any.
-- Every key is the project's own (one hash tag: one shard on a cluster).
-- KEYS[1] operation hash   KEYS[2] lease set   KEYS[3] hash of the project's not-done
-- operations   KEYS[4] the project's change stream   KEYS[5] webhook outbox
-- KEYS[6] metrics hash (core/metrics.py)
-- ARGV[1] JSON: event, moves {from: to}, terminal {state: true}, leased {state: true},
--         now (µs, string), retention (s), member ('project/id'), project,
--         id, name, channel (the project's), publish (PUBLISH, or SPUBLISH on a cluster),
--         stream_max, incr [field, ...], decr [field, ...],
--         fields {name: value}, implied {state: {field: value}} (a done operation's field
--         left out when it holds this value: core/record.py),
--         lease_until (µs, string, optional: take the lease; refused while another holds it),
--         bounds [seconds, ...] and labels [le, ...] of histograms,
--         token (random, one per call)
-- Returns {state before, state after, attempt}; state after is '' when the event does not
-- apply (including a forgotten operation: a deleted hash is never written again).
-- A run with the token of the last change applied is the client retrying after losing the
-- reply: it gets that change's answer, and nothing is applied twice (the 'tok' field, kept
-- until the operation is done, holds 'token|state before').
-- Everything the script needs of the hash is read by one HMGET and written by one HSET.
local args = cjson.decode(ARGV[1])
local wanted = {'state', 'tok', 'att', 'job', 'ct', 'st', 'ntfe', 'lease'}
local counters = {}
for _, name in ipairs(args.incr) do counters[#counters + 1] = {name, 1} end
for _, name in ipairs(args.decr) do counters[#counters + 1] = {name, -1} end
for _, counter in ipairs(counters) do wanted[#wanted + 1] = counter[1] end
local found = redis.call('HMGET', KEYS[1], unpack(wanted))
local current, last, job, held = found[1], found[2], found[4], found[8]
if not current then return {'', '', '0'} end
if last and string.sub(last, 1, #args.token + 1) == args.token .. '|' then
  return {string.sub(last, #args.token + 2), current, found[3] or '0'}
end
local target = args.moves[current]
if not target then return {current, '', '0'} end
if args.lease_until and current ~= 'PENDING' then
  -- Taking over a started operation is allowed only once its holder stopped renewing.
  if held and tonumber(held) > tonumber(args.now) then return {current, '', '0'} end
end
local set, drop = {state = target}, {}
for name, value in pairs(args.fields) do set[name] = value end
for i, counter in ipairs(counters) do
  set[counter[1]] = tostring((tonumber(set[counter[1]] or found[8 + i]) or 0) + counter[2])
end
local done = args.terminal[target]
if done then
  -- A done operation is never changed again: no change token, and its update time is its
  -- end time.
  set.et = args.now
  drop = {'ut', 'tok'}
  for name, value in pairs(args.implied[target] or {}) do
    if set[name] == value then set[name] = nil; drop[#drop + 1] = name end
  end
else
  set.ut = args.now
  set.tok = args.token .. '|' .. current
end
if args.lease_until then
  set.lease = args.lease_until
  redis.call('ZADD', KEYS[2], args.lease_until, args.member)
elseif (held or args.leased[current]) and not args.leased[target] then
  drop[#drop + 1] = 'lease'
  redis.call('ZREM', KEYS[2], args.member)
end
local flat = {}
for name, value in pairs(set) do flat[#flat + 1] = name; flat[#flat + 1] = value end
redis.call('HSET', KEYS[1], unpack(flat))
if #drop > 0 then redis.call('HDEL', KEYS[1], unpack(drop)) end
local function count(kind, label, by)
  redis.call('HINCRBY', KEYS[6], kind .. '|' .. job .. '|' .. label, by)
end
local function observe(kind, seconds)  -- one bucket, not cumulative: core/metrics.py adds up
  local label = '+Inf'
  for i, bound in ipairs(args.bounds) do
    if seconds <= bound then label = args.labels[i]; break end
  end
  count(kind, label, 1)
  redis.call('HINCRBYFLOAT', KEYS[6], kind .. '|' .. job .. '|sum', seconds)
end
if current ~= target then count('moved', current .. '>' .. target, 1) end
if args.event == 'start' then
  observe('wait', (tonumber(args.now) - tonumber(found[5])) / 1e6)
end
if done then
  local started = set.st or found[6]
  if started then observe('run', (tonumber(args.now) - tonumber(started)) / 1e6) end
  if redis.call('HINCRBY', KEYS[3], args.project, -1) <= 0 then
    redis.call('HDEL', KEYS[3], args.project)
  end
  -- The hash expires by itself; the reaper then drops its index entry (core/lua/reap.lua).
  redis.call('EXPIRE', KEYS[1], args.retention)
end
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', args.stream_max, '*',
                         'id', args.id, 'event', args.event, 'state', target)
-- An idle project's stream goes with its operations: its TTL is set when operations are
-- created and when they end, never shorter than theirs.
if done then redis.call('EXPIRE', KEYS[4], args.retention) end
redis.call(args.publish, args.channel, cjson.encode({name = args.name, project = args.project,
                                                 event = args.event, state = target}))
local kind = done and 'done' or (args.event == 'progress' and 'progress')
local wanted_events = found[7]
if kind and wanted_events and string.find(',' .. wanted_events .. ',', ',' .. kind .. ',', 1, true) then
  -- The stream entry id names this change: the delivery's idempotency id.
  redis.call('ZADD', KEYS[5], math.floor(tonumber(args.now) / 1000), cjson.encode({
    project = args.project, id = args.id, event = kind, delivery = args.id .. '/' .. entry,
    attempt = 1}))
end
return {current, target, set.att or found[3] or '0'}
