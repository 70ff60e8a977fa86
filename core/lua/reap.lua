-- Drop from a project's index the operations whose hash has expired (done operations carry
-- their own TTL), examining at most ARGV[2] entries created before ARGV[1], the oldest
-- first, from where the last run stopped: operations that live long at the old end of the
-- index are passed over, not waited for. Once it reaches ARGV[1] it starts again from
-- the oldest, so each survivor is looked at again in a later round.
-- Only an operation created more than the retention ago can have expired, so only those
-- are examined.
-- KEYS[1] project index   KEYS[2] where the last run stopped (a score)
-- ARGV[1] newest create time to examine (µs)   ARGV[2] most entries to examine
-- ARGV[3] key prefix of the project's operation hashes
-- Returns how many entries were dropped.
local from = redis.call('GET', KEYS[2])
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], from and '(' .. from or '-inf', ARGV[1],
                           'WITHSCORES', 'LIMIT', 0, ARGV[2])
local gone = {}
for i = 1, #entries, 2 do
  if redis.call('EXISTS', ARGV[3] .. entries[i]) == 0 then gone[#gone + 1] = entries[i] end
end
if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
if #entries < 2 * tonumber(ARGV[2]) then
  if from then redis.call('DEL', KEYS[2]) end  -- at the end: next, from the oldest again
else
  redis.call('SET', KEYS[2], entries[#entries])
end
return #gone
