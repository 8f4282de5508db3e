//! The Lua scripts of the queues. Each touches the keys of one queue only
//! (one hash tag), so it runs whole on one node of a Redis Cluster; the
//! promote script's wake-up signal is the exception, passed only when
//! Redis is not a cluster.

/// Takes up to ARGV[1] messages from one queue, tenants in turn.
///
/// KEYS[1]: the queue's tenants (scored by when last served), KEYS[2]: its
/// pause flag. ARGV[2]: the prefix of its per-tenant ready sets. ARGV[3..]:
/// tenants to skip (at their running limit). Each round gives every tenant
/// an equal share of what is still wanted (at least one message), oldest
/// first; a served tenant goes to the back of the line, and a tenant with
/// nothing left leaves it. Returns the messages taken.
pub const POP: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
local want = tonumber(ARGV[1])
local prefix = ARGV[2]
local skip = {}
for i = 3, #ARGV do skip[ARGV[i]] = true end
local line = redis.call('ZRANGE', KEYS[1], 0, want + #ARGV - 3)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local seq = tonumber(last[2] or '0')
local active = {}
for _, tenant in ipairs(line) do
  if not skip[tenant] then active[#active + 1] = tenant end
end
local taken = {}
while want > 0 and #active > 0 do
  local share = math.max(1, math.floor(want / #active))
  local still = {}
  for _, tenant in ipairs(active) do
    if want > 0 then
      local popped = redis.call('ZPOPMIN', prefix .. tenant, math.min(share, want))
      local n = #popped / 2
      for i = 1, #popped, 2 do taken[#taken + 1] = popped[i] end
      want = want - n
      if redis.call('EXISTS', prefix .. tenant) == 0 then
        redis.call('ZREM', KEYS[1], tenant)
      elseif n > 0 then
        seq = seq + 1
        redis.call('ZADD', KEYS[1], seq, tenant)
        still[#still + 1] = tenant
      end
    end
  end
  active = still
end
return taken
";

/// Moves due retries of one queue into their tenants' ready sets.
///
/// KEYS[1]: the delayed set, KEYS[2]: the tenants, KEYS[3] (optional):
/// the wake-up signal. ARGV[1]: now (ms), ARGV[2]: most to move, ARGV[3]: key lifetime
/// (s), ARGV[4]: the prefix of the ready sets. Atomic, so concurrent
/// promoters never move a message twice.
pub const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local ok, message = pcall(cjson.decode, member)
  local tenant = 'default'
  if ok and type(message) == 'table' and type(message.tenant) == 'string' then
    tenant = message.tenant
  end
  local ready = ARGV[4] .. tenant
  redis.call('ZADD', ready, 'NX', ARGV[1], member)
  redis.call('EXPIRE', ready, ARGV[3])
  redis.call('ZADD', KEYS[2], 'NX', 0, tenant)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  if KEYS[3] then
    redis.call('LPUSH', KEYS[3], 1)
    redis.call('LTRIM', KEYS[3], 0, 63)
    redis.call('EXPIRE', KEYS[3], ARGV[3])
  end
end
return #due
";

/// Messages ready on one queue, and the enqueue time (ms) of the oldest.
///
/// KEYS[1]: the tenants. ARGV[1]: the prefix of the ready sets. O(tenants).
pub const DEPTH: &str = r"
local total = 0
local oldest = false
for _, tenant in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. tenant
  total = total + redis.call('ZCARD', key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] and (not oldest or tonumber(head[2]) < oldest) then
    oldest = tonumber(head[2])
  end
end
return {total, oldest and tostring(oldest) or false}
";
