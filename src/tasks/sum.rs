//! `sum`: adds two numbers. Integers stay exact (64-bit, overflow is an error);
//! any float makes the sum a float.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Number;

use super::{NoSettings, RetryPolicy, Task, TaskEnv, TaskError};
use crate::config::ConfigError;

pub struct Sum;

/// Parameters of `sum`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SumParams {
    /// First addend: an integer or a float.
    #[schema(value_type = f64, example = 1)]
    pub a: Number,
    /// Second addend: an integer or a float.
    #[schema(value_type = f64, example = 2)]
    pub b: Number,
}

/// Output of `sum`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SumOutput {
    /// `a + b`: an integer when both are integers, else a float.
    #[schema(value_type = f64, example = 3)]
    pub result: Number,
}

impl Task for Sum {
    const NAME: &'static str = "sum";
    const DESCRIPTION: &'static str = "Adds `a` and `b`. Output: `{\"result\": a + b}`.";
    type Params = SumParams;
    type Output = SumOutput;
    const QUICK: bool = true;
    type Settings = NoSettings;

    fn build(_: NoSettings, _: &TaskEnv) -> Result<Self, ConfigError> {
        Ok(Sum)
    }

    fn example() -> SumParams {
        SumParams {
            a: Number::from(1),
            b: Number::from(2),
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::FEW_QUICK
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }

    async fn run(&self, params: SumParams) -> Result<SumOutput, TaskError> {
        add(&params.a, &params.b).map(|result| SumOutput { result })
    }
}

fn add(a: &Number, b: &Number) -> Result<Number, TaskError> {
    if a.is_f64() || b.is_f64() {
        let (x, y) = (to_f64(a), to_f64(b));
        return Number::from_f64(x + y)
            .ok_or_else(|| TaskError::fatal(format!("{a} + {b} is not a finite number")));
    }
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x
            .checked_add(y)
            .map(Number::from)
            .ok_or_else(|| overflow(a, b)),
        _ => Err(overflow(a, b)),
    }
}

fn to_f64(n: &Number) -> f64 {
    // serde_json numbers always convert to f64 (integers may round).
    n.as_f64().unwrap_or(f64::NAN)
}

fn overflow(a: &Number, b: &Number) -> TaskError {
    TaskError::fatal(format!(
        "integer overflow: {a} + {b} does not fit in a signed 64-bit integer \
         (send floats for approximate arithmetic)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn num(v: Value) -> Number {
        match v {
            Value::Number(n) => n,
            other => panic!("not a number: {other}"),
        }
    }

    #[test]
    fn integers_add_exactly() {
        assert_eq!(add(&num(json!(2)), &num(json!(40))), Ok(Number::from(42)));
        assert_eq!(add(&num(json!(-5)), &num(json!(3))), Ok(Number::from(-2)));
    }

    #[test]
    fn a_float_makes_a_float_sum() {
        let sum = add(&num(json!(1.5)), &num(json!(2)))
            .ok()
            .and_then(|n| n.as_f64());
        assert_eq!(sum, Some(3.5));
    }

    #[test]
    fn integer_overflow_is_a_fatal_error_not_a_panic() {
        let err = add(&num(json!(i64::MAX)), &num(json!(1))).err();
        assert!(matches!(err, Some(TaskError::Fatal(m)) if m.contains("overflow")));
        let err = add(&num(json!(u64::MAX)), &num(json!(0))).err();
        assert!(matches!(err, Some(TaskError::Fatal(m)) if m.contains("overflow")));
    }

    #[test]
    fn an_infinite_float_sum_is_a_fatal_error() {
        let err = add(&num(json!(f64::MAX)), &num(json!(f64::MAX))).err();
        assert!(matches!(err, Some(TaskError::Fatal(m)) if m.contains("finite")));
    }
}
