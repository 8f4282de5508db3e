//! Budgets shared by every process through Redis: rates (a generic cell
//! rate algorithm on Redis's clock) and permits (a semaphore whose permits
//! expire, so a process that dies holding some leaks none). Used for API
//! keys' submission rates, tenants' running limits and the LLM budget.

use std::time::Duration;

use crate::redis_pool::{Redis, RedisError};

/// KEYS[1] holds the theoretical arrival time (ms). ARGV[1]: ms per unit,
/// ARGV[2]: units now (may be negative: a refund), ARGV[3]: the burst (ms
/// of units allowed at once), ARGV[4]: '1' to charge the units whatever
/// the wait (a correction of units already spent). Returns 0 when
/// admitted, else the ms to wait.
const RATE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local burst = math.max(tonumber(ARGV[3]), interval * n)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval * n
if n > 0 and ARGV[4] ~= '1' and next_tat - now > burst then
  return math.ceil(next_tat - now - burst)
end
if next_tat < now then next_tat = now end
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil(next_tat - now) + 60000)
return 0
";

/// Takes a permit of a semaphore whose permits expire.
///
/// KEYS[1]: the holders (members) and their expiry in ms (scores).
/// ARGV[1]: the holder, ARGV[2]: the limit, ARGV[3]: how long the permit
/// lives (ms). Expired permits are dropped first. Returns 1 when taken (or
/// already held, which renews it), 0 when full.
const ACQUIRE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 60000)
return 1
";

/// Whether something may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    Refused { retry_after: Duration },
}

/// Budgets in Redis; cheap to clone.
#[derive(Clone)]
pub struct Budgets {
    redis: Redis,
    rate: redis::Script,
    acquire: redis::Script,
}

impl Budgets {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            rate: redis::Script::new(RATE_SCRIPT),
            acquire: redis::Script::new(ACQUIRE_SCRIPT),
        }
    }

    /// Takes `units` of the rate `key` allowing `per_second` units a
    /// second, `burst` of them at once (at least what is asked). Negative
    /// `units` give back what was over-estimated.
    pub async fn take(
        &self,
        key: &str,
        per_second: f64,
        units: f64,
        burst: Duration,
    ) -> Result<Admission, RedisError> {
        self.run_rate(key, per_second, units, burst, false).await
    }

    /// Charges `units` to the rate `key` whatever the wait: what was spent
    /// beyond an estimate (or, negative, given back). Later takes wait for it.
    pub async fn charge(
        &self,
        key: &str,
        per_second: f64,
        units: f64,
        burst: Duration,
    ) -> Result<(), RedisError> {
        self.run_rate(key, per_second, units, burst, true)
            .await
            .map(drop)
    }

    async fn run_rate(
        &self,
        key: &str,
        per_second: f64,
        units: f64,
        burst: Duration,
        force: bool,
    ) -> Result<Admission, RedisError> {
        let interval_ms = 1000.0 / per_second.max(f64::MIN_POSITIVE);
        let mut invocation = self.rate.prepare_invoke();
        invocation
            .key(key)
            .arg(interval_ms)
            .arg(units)
            .arg(u64::try_from(burst.as_millis()).unwrap_or(u64::MAX))
            .arg(if force { "1" } else { "0" });
        let wait_ms: u64 = self.redis.script(&invocation).await?;
        Ok(if wait_ms == 0 {
            Admission::Admitted
        } else {
            Admission::Refused {
                retry_after: Duration::from_millis(wait_ms),
            }
        })
    }

    /// Takes one of `limit` permits of `key` for `holder`, for `lifetime`;
    /// `false` when all are taken.
    pub async fn acquire(
        &self,
        key: &str,
        holder: &str,
        limit: u32,
        lifetime: Duration,
    ) -> Result<bool, RedisError> {
        let mut invocation = self.acquire.prepare_invoke();
        invocation
            .key(key)
            .arg(holder)
            .arg(limit)
            .arg(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX));
        let taken: u8 = self.redis.script(&invocation).await?;
        Ok(taken == 1)
    }

    /// Gives back permits, each `(key, holder)`.
    pub async fn release<'a>(
        &self,
        permits: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), RedisError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for (key, holder) in permits {
            pipe.cmd("ZREM").arg(key).arg(holder).ignore();
            any = true;
        }
        if !any {
            return Ok(());
        }
        self.redis.pipeline(&pipe).await
    }

    /// Permits of `key` held now (expired ones not counted).
    pub async fn in_use(&self, key: &str) -> Result<u64, RedisError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        self.redis
            .query(
                redis::cmd("ZCOUNT")
                    .arg(key)
                    .arg(now.to_string())
                    .arg("+inf"),
            )
            .await
    }

    /// Stops everyone for `wait` (a provider said so): the longest wait
    /// asked wins.
    pub async fn hold_off(&self, key: &str, wait: Duration) -> Result<(), RedisError> {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(1)
            .arg("PX")
            .arg(ms)
            .arg("NX")
            .ignore();
        pipe.cmd("PEXPIRE").arg(key).arg(ms).arg("GT").ignore();
        self.redis.pipeline(&pipe).await
    }

    /// How long everyone must still hold off, if at all.
    pub async fn held_off(&self, key: &str) -> Result<Option<Duration>, RedisError> {
        let ms: i64 = self.redis.query(redis::cmd("PTTL").arg(key)).await?;
        Ok((ms > 0).then(|| Duration::from_millis(ms.unsigned_abs())))
    }
}
