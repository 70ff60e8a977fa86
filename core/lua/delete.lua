-- Forget an operation: its hash, its index entry, its lease, its request key, and its
-- place in the project's count of not-done operations; record and announce it.
-- KEYS[1] operation hash   KEYS[2] project index   KEYS[3] lease set
-- KEYS[4] not-done counts  KEYS[5] the project's change stream   KEYS[6] metrics hash
-- ARGV[1] project   ARGV[2] operation id, stored form (core/stored_ids.py)   ARGV[3] 'project/id'   ARGV[4] request key prefix
-- ARGV[5] operation id   ARGV[6] the project's changes channel   ARGV[7] stream length bound   ARGV[8] now (µs)
-- ARGV[9] retention (s)    ARGV[10] PUBLISH, or SPUBLISH on a cluster
-- ARGV[11..] terminal state names
-- Returns 1 if the operation existed.
local found = redis.call('HMGET', KEYS[1], 'state', 'rid', 'job')
if not found[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
if found[2] then redis.call('DEL', ARGV[4] .. found[2]) end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*',
           'id', ARGV[5], 'event', 'delete', 'state', found[1])
redis.call('EXPIRE', KEYS[5], ARGV[9])
redis.call(ARGV[10], ARGV[6], cjson.encode({
  name = 'projects/' .. ARGV[1] .. '/operations/' .. ARGV[5], project = ARGV[1],
  event = 'delete', state = found[1]}))
for i = 11, #ARGV do
  if found[1] == ARGV[i] then return 1 end
end
if redis.call('HINCRBY', KEYS[4], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[4], ARGV[1]) end
redis.call('HINCRBY', KEYS[6], 'deleted|' .. found[3] .. '|' .. found[1], 1)
return 1
