-- Apply one lifecycle event to an operation atomically.
-- KEYS[1] operation hash   KEYS[2] expiry set of done operations
-- ARGV[1] JSON: moves {from: to}, terminal {state: true}, now (µs, string), expires_at (s),
--         retention (s), member ('project/id'), channel, name, incr_attempt, fields {name: value}
-- Returns {state before, state after}; state after is '' when the event does not apply
-- (including a forgotten operation: a deleted hash is never written again).
local args = cjson.decode(ARGV[1])
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'', ''} end
local target = args.moves[current]
if not target then return {current, ''} end
local pairs_to_set = {'state', target, 'ut', args.now}
for name, value in pairs(args.fields) do
  pairs_to_set[#pairs_to_set + 1] = name
  pairs_to_set[#pairs_to_set + 1] = value
end
if args.terminal[target] then
  pairs_to_set[#pairs_to_set + 1] = 'et'
  pairs_to_set[#pairs_to_set + 1] = args.now
end
redis.call('HSET', KEYS[1], unpack(pairs_to_set))
if args.incr_attempt then redis.call('HINCRBY', KEYS[1], 'att', 1) end
if args.terminal[target] then
  redis.call('EXPIRE', KEYS[1], args.retention)
  redis.call('ZADD', KEYS[2], args.expires_at, args.member)
end
redis.call('PUBLISH', args.channel, cjson.encode({name = args.name, state = target}))
return {current, target}
