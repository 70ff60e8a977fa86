-- Record a message a worker has just taken (BLMOVE) from its queue onto the landing list as
-- unacknowledged, kombu's way, in one step: the message is never in neither place.
-- KEYS[1] landing list   KEYS[2] kombu's unacked hash   KEYS[3] kombu's unacked index
-- ARGV[1] the message as taken   ARGV[2] its delivery tag
-- ARGV[3] what kombu keeps in the unacked hash   ARGV[4] now, in seconds
-- Returns 1, or 0 when the message is no longer there (a supervisor put it back on its
-- queue because its taker seemed dead): the caller must then not deliver it.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
