-- Create one or many operations of one project atomically (every key on the project's hash
-- tag): for each, its hash, its place in
-- the project index, a change-stream entry and an announcement, when the client sent a
-- requestId, the request key that makes a resubmission return the same one and its job's
-- task message: on the queue when the broker shares this Redis, else in the task outbox,
-- for the API or a relay to publish (workers/relay.py).
-- KEYS[1] project index   KEYS[2] hash of not-done operations per project
-- KEYS[3] the project's change stream   KEYS[4] metrics hash (core/metrics.py)
-- KEYS[2 + 3i], KEYS[3 + 3i], KEYS[4 + 3i] operation i's hash, request key and the queue
--           its message goes on (each of the last two is its hash again when it has none)
-- ARGV[1] create time, microseconds   ARGV[2] request-key TTL and stream TTL, seconds
-- ARGV[3] project   ARGV[4] most not-done operations a project may have (0: no limit)
-- ARGV[5] the project's changes channel   ARGV[6] stream length bound   ARGV[7] job
-- ARGV[8] the command announcing a change (PUBLISH, or SPUBLISH on a cluster)
-- ARGV[9..] per operation: id, its stored form (core/stored_ids.py: in its index entry),
--           '1' when it has a requestId, its task message ('' for
--           none), when that message is due ('' to push it on a broker queue, a list; else
--           a score: it is an entry of the task outbox, a sorted set), n, then n field,
--           value pairs of its new hash
-- Returns, per operation in order, 1 and its create time when created, or 0 and the id of
-- the operation its requestId already names (in Redis, or earlier in this same call);
-- or {2, how many are not done} when creating them all would pass the project's limit,
-- in which case nothing is written. An operation whose hash exists already was created by
-- an earlier run of this very call (the client retried after losing the reply): it is
-- answered as created then, and nothing is written or queued again.
local ops, at = {}, 9
while at <= #ARGV do
  local i = #ops + 1
  local op = {id = ARGV[at], stored = ARGV[at + 1], hash = KEYS[2 + 3 * i],
              request = ARGV[at + 2] == '1' and KEYS[3 + 3 * i] or nil,
              queue = KEYS[4 + 3 * i], message = ARGV[at + 3], due = ARGV[at + 4],
              first = at + 6, last = at + 5 + 2 * tonumber(ARGV[at + 5])}
  ops[i] = op
  at = op.last + 1
end
-- Which ones are new: a requestId seen before (in Redis or in this call) names its operation.
local claimed, fresh = {}, 0
for _, op in ipairs(ops) do
  if op.request then
    op.existing = claimed[op.request] or redis.call('GET', op.request)
    if not op.existing then claimed[op.request] = op.id end
    if op.existing == op.id then op.existing = nil end  -- named by an earlier run of this call
  end
  if not op.existing then
    op.again = redis.call('HGET', op.hash, 'ct')
    if not op.again then fresh = fresh + 1 end
  end
end
local queued = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
local limit = tonumber(ARGV[4])
if fresh > 0 and limit > 0 and queued + fresh > limit then return {2, tostring(queued)} end
-- Scores are unique per project so that a page token (the last score seen) never skips or
-- repeats an operation created in the same microsecond as another.
local created = tonumber(ARGV[1])
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= created then created = tonumber(newest[2]) + 1 end
local job = ARGV[7]
local out = {}
for _, op in ipairs(ops) do
  if op.existing then
    out[#out + 1], out[#out + 2] = 0, op.existing
  elseif op.again then
    out[#out + 1], out[#out + 2] = 1, op.again
  else
    local stamp = string.format('%.0f', created)
    created = created + 1
    redis.call('HSET', op.hash, 'ct', stamp, 'ut', stamp, unpack(ARGV, op.first, op.last))
    redis.call('ZADD', KEYS[1], stamp, op.stored)
    if op.request then redis.call('SET', op.request, op.id, 'EX', ARGV[2]) end
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
               'id', op.id, 'event', 'create', 'state', 'PENDING')
    redis.call(ARGV[8], ARGV[5], cjson.encode({
      name = 'projects/' .. ARGV[3] .. '/operations/' .. op.id, project = ARGV[3],
      event = 'create', state = 'PENDING'}))
    if op.due ~= '' then
      redis.call('ZADD', op.queue, op.due, op.message)
    elseif op.message ~= '' then
      redis.call('LPUSH', op.queue, op.message)
    end
    out[#out + 1], out[#out + 2] = 1, stamp
  end
end
if fresh > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], fresh)
  redis.call('HINCRBY', KEYS[4], 'created|' .. job .. '|', fresh)
  redis.call('EXPIRE', KEYS[3], ARGV[2])  -- an idle project's stream goes with its operations
end
return out
