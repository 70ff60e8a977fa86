-- Put a message left on a landing list (its taker died before recording it) back at the
-- head of its queue, in one step.
-- KEYS[1] landing list   KEYS[2] the queue   ARGV[1] the message
-- Returns 1, or 0 when the message has moved on (its taker recorded it after all).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
