//! JSON as received and as stored.
//!
//! Received: [`parse_strict`] refuses a key given twice in one object, so a
//! body means one thing (serde_json keeps the last of duplicates silently,
//! so `{"task_name":"query_llm","task_name":"sum"}` would run `sum`).
//!
//! Stored: PostgreSQL's `jsonb` keeps numbers as `numeric`, which forgets
//! whether `1e16` was a float: it comes back as the integer
//! `10000000000000000`. [`to_jsonb_text`] writes every float with a
//! fractional part (`10000000000000000.0`), which `numeric` keeps, so what a
//! worker reads back is what the client sent.

use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// Not JSON at all (syntax, encoding, trailing data).
    #[error("{0}")]
    Syntax(String),
    /// `key` appears twice in the object at `path` (`""` for the top level).
    #[error("duplicate key `{key}`")]
    DuplicateKey { path: String, key: String },
}

/// Parses `bytes` as JSON, refusing duplicate keys.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize::<_, Strict>(&mut deserializer);
    let value = match parsed {
        Ok(Strict(value)) => value,
        Err(err) => {
            let path = err.path().to_string();
            let message = err.inner().to_string();
            return Err(match duplicate_key_in(&message) {
                Some(key) => StrictJsonError::DuplicateKey {
                    path: if path == "." { String::new() } else { path },
                    key,
                },
                None => StrictJsonError::Syntax(message),
            });
        }
    };
    deserializer
        .end()
        .map_err(|err| StrictJsonError::Syntax(err.to_string()))?;
    Ok(value)
}

const DUPLICATE_PREFIX: &str = "duplicate key `";

/// The key named by our visitor's error message ("duplicate key `k`" plus
/// serde_json's position suffix).
fn duplicate_key_in(message: &str) -> Option<String> {
    let rest = message.strip_prefix(DUPLICATE_PREFIX)?;
    let end = rest.rfind('`')?;
    Some(rest[..end].to_owned())
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_PREFIX}{key}`")));
            }
            let Strict(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// `value` as JSON text for a `jsonb` column, every float written so that
/// `numeric` keeps it a float (see the module docs).
pub fn to_jsonb_text(value: &Value) -> String {
    let mut out = String::with_capacity(64);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Number(number) => write_number(out, number),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn write_number(out: &mut String, number: &Number) {
    match number.as_f64() {
        // A whole float: every digit, then `.0`, which numeric keeps.
        Some(float) if number.is_f64() && float.fract() == 0.0 => {
            let _ = write!(out, "{float:.1}");
        }
        // Integers, and fractions (whose shortest form always keeps a
        // fractional digit in numeric).
        _ => out.push_str(&number.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_duplicate_key_is_refused_and_named_with_its_place() {
        let err = parse_strict(br#"{"task_name":"query_llm","task_name":"sum","a":1}"#).err();
        assert!(
            matches!(&err, Some(StrictJsonError::DuplicateKey { key, path }) if key == "task_name" && path.is_empty()),
            "{err:?}"
        );
        let err = parse_strict(br#"{"tasks":[{"a":1},{"a":1,"a":2}]}"#).err();
        assert!(
            matches!(&err, Some(StrictJsonError::DuplicateKey { key, path }) if key == "a" && path == "tasks[1]"),
            "{err:?}"
        );
    }

    #[test]
    fn ordinary_json_parses_as_serde_json_does() {
        let text = br#"{"a":[1,-2,3.5,1e16,null,true,"x\u0041"],"b":{"c":{}}}"#;
        let strict = parse_strict(text).ok();
        let plain: Option<Value> = serde_json::from_slice(text).ok();
        assert_eq!(strict, plain);
        assert!(matches!(
            parse_strict(b"{\"a\":1} x"),
            Err(StrictJsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_strict(b"{\"a\":"),
            Err(StrictJsonError::Syntax(_))
        ));
    }

    #[test]
    fn whole_floats_keep_a_fraction_when_stored() {
        let value = parse_strict(br#"{"a":1e16,"b":1,"c":1.5,"d":1e-7,"e":-2.0,"f":[1e19]}"#)
            .unwrap_or_default();
        let text = to_jsonb_text(&value);
        assert_eq!(
            text,
            r#"{"a":10000000000000000.0,"b":1,"c":1.5,"d":1e-7,"e":-2.0,"f":[10000000000000000000.0]}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, value, "every number reads back with its kind");
        assert_eq!(to_jsonb_text(&json!({"k\"": "v\n"})), r#"{"k\"":"v\n"}"#);
        let huge = json!(f64::MAX);
        let back: Value = serde_json::from_str(&to_jsonb_text(&huge)).unwrap_or_default();
        assert_eq!(back, huge);
    }
}
