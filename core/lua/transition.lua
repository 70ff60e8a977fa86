-- Apply one lifecycle event to an operation atomically, record it in the project's change
-- stream, announce it, and queue the webhook delivery the operation asked for, if any.
-- Every key is the project's own (one hash tag: one shard on a cluster).
-- KEYS[1] operation hash   KEYS[2] expiry set of done operations   KEYS[3] lease set
-- KEYS[4] hash of the project's not-done operations   KEYS[5] the project's change stream
-- KEYS[6] webhook outbox   KEYS[7] metrics hash (core/metrics.py)
-- ARGV[1] JSON: event, moves {from: to}, terminal {state: true}, leased {state: true},
--         now (µs, string), expires_at (s), retention (s), member ('project/id'), project,
--         id, channel (the project's), publish (PUBLISH, or SPUBLISH on a cluster), name,
--         stream_max, incr [field, ...], decr [field, ...],
--         fields {name: value},
--         lease_until (µs, string, optional: take the lease; refused while another holds it),
--         active {state: true}, bounds [seconds, ...] and labels [le, ...] of histograms,
--         token (random, one per call)
-- Returns {state before, state after, attempt}; state after is '' when the event does not
-- apply (including a forgotten operation: a deleted hash is never written again).
-- A run with the token of the last change applied is the client retrying after losing the
-- reply: it gets that change's answer, and nothing is applied twice (the 'tok' field, kept
-- until the operation is done, holds 'token|state before').
local args = cjson.decode(ARGV[1])
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'', '', '0'} end
local last = redis.call('HGET', KEYS[1], 'tok')
if last and string.sub(last, 1, #args.token + 1) == args.token .. '|' then
  return {string.sub(last, #args.token + 2), current, redis.call('HGET', KEYS[1], 'att') or '0'}
end
local target = args.moves[current]
if not target then return {current, '', '0'} end
if args.lease_until and current ~= 'PENDING' then
  -- Taking over a started operation is allowed only once its holder stopped renewing.
  local held = redis.call('HGET', KEYS[1], 'lease')
  if held and tonumber(held) > tonumber(args.now) then return {current, '', '0'} end
end
local pairs_to_set = {'state', target, 'ut', args.now}
for name, value in pairs(args.fields) do
  pairs_to_set[#pairs_to_set + 1] = name
  pairs_to_set[#pairs_to_set + 1] = value
end
if args.terminal[target] then
  pairs_to_set[#pairs_to_set + 1] = 'et'
  pairs_to_set[#pairs_to_set + 1] = args.now
  redis.call('HDEL', KEYS[1], 'tok')  -- a done operation is never changed again anyway
else
  pairs_to_set[#pairs_to_set + 1] = 'tok'
  pairs_to_set[#pairs_to_set + 1] = args.token .. '|' .. current
end
if args.lease_until then
  pairs_to_set[#pairs_to_set + 1] = 'lease'
  pairs_to_set[#pairs_to_set + 1] = args.lease_until
  redis.call('ZADD', KEYS[3], args.lease_until, args.member)
end
redis.call('HSET', KEYS[1], unpack(pairs_to_set))
for _, name in ipairs(args.incr) do redis.call('HINCRBY', KEYS[1], name, 1) end
for _, name in ipairs(args.decr) do redis.call('HINCRBY', KEYS[1], name, -1) end
local job = redis.call('HGET', KEYS[1], 'job')
local function count(kind, label, by)
  redis.call('HINCRBY', KEYS[7], kind .. '|' .. job .. '|' .. label, by)
end
local function observe(kind, seconds)
  for i, bound in ipairs(args.bounds) do
    if seconds <= bound then count(kind, args.labels[i], 1) end
  end
  count(kind, '+Inf', 1)
  count(kind, 'count', 1)
  redis.call('HINCRBYFLOAT', KEYS[7], kind .. '|' .. job .. '|sum', seconds)
end
if current ~= target then
  if args.active[current] then count('active', current, -1) end
  if args.active[target] then count('active', target, 1) end
end
if args.event == 'start' then
  observe('wait', (tonumber(args.now) - tonumber(redis.call('HGET', KEYS[1], 'ct'))) / 1e6)
end
if args.terminal[target] then
  count('finished', target, 1)
  local started = redis.call('HGET', KEYS[1], 'st')
  if started then observe('run', (tonumber(args.now) - tonumber(started)) / 1e6) end
end
if not args.leased[target] then
  redis.call('HDEL', KEYS[1], 'lease')
  redis.call('ZREM', KEYS[3], args.member)
end
if args.terminal[target] then
  if redis.call('HINCRBY', KEYS[4], args.project, -1) <= 0 then
    redis.call('HDEL', KEYS[4], args.project)
  end
  redis.call('EXPIRE', KEYS[1], args.retention)
  redis.call('ZADD', KEYS[2], args.expires_at, args.member)
end
local entry = redis.call('XADD', KEYS[5], 'MAXLEN', '~', args.stream_max, '*', 'name',
                         args.name, 'event', args.event, 'state', target, 'time', args.now)
redis.call('EXPIRE', KEYS[5], args.retention)  -- an idle project's stream goes with its operations
redis.call(args.publish, args.channel, cjson.encode({name = args.name, project = args.project,
                                                 event = args.event, state = target}))
local kind = args.terminal[target] and 'done' or (args.event == 'progress' and 'progress')
local wanted = redis.call('HGET', KEYS[1], 'ntfe')
if kind and wanted and string.find(',' .. wanted .. ',', ',' .. kind .. ',', 1, true) then
  -- The stream entry id names this change: the delivery's idempotency id.
  redis.call('ZADD', KEYS[6], math.floor(tonumber(args.now) / 1000), cjson.encode({
    project = args.project, id = args.id, event = kind, delivery = args.id .. '/' .. entry,
    attempt = 1}))
end
return {current, target, redis.call('HGET', KEYS[1], 'att') or '0'}
