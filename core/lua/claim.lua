-- Claim due entries of an outbox (webhook deliveries, task messages): each is pushed ARGV[3]
-- ms into the future rather than removed, so a worker that dies while delivering or
-- publishing it only delays it (at least once).
-- KEYS[1] outbox   ARGV[1] now (ms)   ARGV[2] most to claim   ARGV[3] claim lease (ms)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), member)
end
return due
