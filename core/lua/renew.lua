-- Renew the leases of operations a worker is running; finished or requeued ones are skipped.
-- KEYS[1] lease set   KEYS[2..] operation hashes
-- ARGV[1] lease expiry (µs)   ARGV[2..] 'project/id' members, in the order of KEYS[2..]
local renewed = 0
for i = 2, #KEYS do
  local state = redis.call('HGET', KEYS[i], 'state')
  if state == 'RUNNING' or state == 'CANCELLING' then
    redis.call('HSET', KEYS[i], 'lease', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
