//! Results: one JSON object per run (printed, and appended to `--out`), and
//! a few human lines on stderr.

use std::io::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

/// Rounds to `digits` decimals for the JSON output; non-finite is `null`.
pub fn num(x: f64, digits: i32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    let f = 10f64.powi(digits);
    serde_json::Number::from_f64((x * f).round() / f).map_or(Value::Null, Value::Number)
}

/// An optional figure: `null` when unknown.
pub fn opt(x: Option<f64>, digits: i32) -> Value {
    x.map_or(Value::Null, |v| num(v, digits))
}

/// Prints the run's JSON line and appends it to `out` if given.
pub fn emit(fields: Map<String, Value>, out: Option<&Path>) -> anyhow::Result<()> {
    let line = Value::Object(fields).to_string();
    println!("{line}");
    if let Some(path) = out {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// `"12.3"`, or `"?"` when unknown.
pub fn show(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite()).map_or_else(|| "?".to_owned(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_and_nan_is_null() {
        assert_eq!(num(1.23456, 2).to_string(), "1.23");
        assert_eq!(num(f64::NAN, 2), Value::Null);
        assert_eq!(opt(None, 1), Value::Null);
        assert_eq!(show(Some(2.5), 1), "2.5");
        assert_eq!(show(Some(f64::INFINITY), 1), "?");
        assert_eq!(show(None, 1), "?");
    }
}
