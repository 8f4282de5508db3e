//! Submission rates per API key, shared by every api replica: the generic
//! cell rate algorithm (GCRA) in Redis, on Redis's clock. A key with rate r
//! may submit r tasks in an instant and r per second after that; a batch
//! counts one per task (and may always fit when the bucket is full).

use std::time::Duration;

use crate::keys::Keys;
use crate::redis_pool::{Redis, RedisError};

/// KEYS[1] holds the key's theoretical arrival time (ms). ARGV[1]: ms per
/// submission, ARGV[2]: submissions now. Returns 0 when admitted, else the
/// ms to wait.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local burst = math.max(1000, interval * n)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval * n
if next_tat - now > burst then
  return math.ceil(next_tat - now - burst)
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil(next_tat - now) + 1000)
return 0
";

/// Whether a submission may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Refused { retry_after: Duration },
}

/// Rate limits of API keys; cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    redis: Redis,
    keys: Keys,
    script: redis::Script,
}

impl Quotas {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self {
            redis,
            keys,
            script: redis::Script::new(GCRA_SCRIPT),
        }
    }

    /// Admits `count` submissions of key `key_id` limited to `per_second`.
    pub async fn admit(
        &self,
        key_id: &str,
        per_second: u32,
        count: usize,
    ) -> Result<Admission, RedisError> {
        let interval_ms = 1000.0 / f64::from(per_second.max(1));
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.keys.rate(key_id))
            .arg(interval_ms)
            .arg(count);
        let wait_ms: u64 = self.redis.script(&invocation).await?;
        Ok(if wait_ms == 0 {
            Admission::Admitted
        } else {
            Admission::Refused {
                retry_after: Duration::from_millis(wait_ms),
            }
        })
    }
}
