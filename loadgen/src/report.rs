//! Results: one JSON object per run (printed, and appended to `--out`), and
//! a few human lines on stderr.

use std::io::Write as _;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::procfs::CpuSpan;
use crate::stats::Histogram;

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

/// The figures every delivery workload reports: rate over the whole window
/// (at least `send_s`), latency, and the server's and our own CPU.
pub fn delivery_fields(delivered: u64, latency: &Histogram, span: &CpuSpan, send_s: f64) -> Map<String, Value> {
    let fields = json!({
        "deliveries_per_s": num(delivered as f64 / span.wall.max(send_s).max(1e-9), 0),
        "latency_samples": latency.count(),
        "lat_p50_ms": num(latency.quantile_ms(0.5), 3),
        "lat_p99_ms": num(latency.quantile_ms(0.99), 3),
        "lat_max_ms": num(latency.max() as f64 / 1000.0, 3),
        "server_cpu_s": opt(span.server, 2),
        "server_cpu_pct": opt(span.server_pct(), 1),
        "server_us_per_delivery": opt(span.server_us_per(delivered), 3),
        "loadgen_cpu_pct": opt(span.me_pct(), 1),
        "window_s": num(span.wall, 2),
    });
    fields.as_object().cloned().unwrap_or_default()
}

/// The same for a human: latency and the server's cost per delivery.
pub fn delivery_summary(delivered: u64, latency: &Histogram, span: &CpuSpan) -> String {
    format!(
        "latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms; server {} µs per delivery ({} % of a core)",
        latency.quantile_ms(0.5),
        latency.quantile_ms(0.99),
        latency.max() as f64 / 1000.0,
        show(span.server_us_per(delivered), 2),
        show(span.server_pct(), 1),
    )
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
