-- Create an operation atomically: its hash, its place in the project index and, when the
-- client sent a requestId, the request key that makes a resubmission return the same one.
-- KEYS[1] operation hash   KEYS[2] project index   KEYS[3] request key (only read when ARGV[4] == '1')
-- KEYS[4] hash of not-done operations per project   KEYS[5] the project's change stream
-- ARGV[1] operation id     ARGV[2] create time, microseconds
-- ARGV[3] request-key TTL, seconds     ARGV[4] '1' when there is a requestId
-- ARGV[5] project          ARGV[6] most not-done operations a project may have (0: no limit)
-- ARGV[7] operation name   ARGV[8] changes channel   ARGV[9] stream length bound
-- ARGV[10..] field, value pairs of the new hash
-- Returns {1, create time} when created, {0, existing operation id} for a known requestId,
-- {2, how many are not done} when the project is at its limit.
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {0, existing} end
end
local queued = tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '0')
if tonumber(ARGV[6]) > 0 and queued >= tonumber(ARGV[6]) then return {2, tostring(queued)} end
-- Scores are unique per project so that a page token (the last score seen) never skips or
-- repeats an operation created in the same microsecond as another.
local created = tonumber(ARGV[2])
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= created then created = tonumber(newest[2]) + 1 end
local stamp = string.format('%.0f', created)
redis.call('HSET', KEYS[1], 'ct', stamp, 'ut', stamp, unpack(ARGV, 10))
redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
redis.call('ZADD', KEYS[2], stamp, ARGV[1])
if ARGV[4] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3]) end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[9], '*',
           'name', ARGV[7], 'event', 'create', 'state', 'PENDING', 'time', stamp)
redis.call('EXPIRE', KEYS[5], ARGV[3])  -- an idle project's stream goes with its operations
redis.call('PUBLISH', ARGV[8], cjson.encode({name = ARGV[7], project = ARGV[5],
                                             event = 'create', state = 'PENDING'}))
return {1, stamp}
