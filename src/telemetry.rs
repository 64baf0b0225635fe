//! Counters, gauges and histograms for `/metrics`, in the Prometheus text format.
//!
//! One process-wide registry: the places that do the work (the HTTP layer, report builds,
//! SQL, SMTP, definition reloads) record into it with [`count`], [`observe`] and [`gauge`];
//! `/metrics` renders it. Label values come from kpi's own vocabulary (route templates,
//! status codes, outcomes), never from request input, so series stay few.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Upper bounds of latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram {
        counts: [u64; BUCKETS.len()],
        sum: f64,
        count: u64,
    },
}

/// A metric family's help text and kind, and its series by label set.
#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    series: BTreeMap<String, Value>,
}

type Registry = Mutex<BTreeMap<&'static str, Family>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn with_series(
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &[(&str, &str)],
    update: impl FnOnce(&mut Option<Value>),
) {
    let Ok(mut families) = registry().lock() else {
        return;
    };
    let family = families.entry(name).or_insert_with(|| Family {
        help,
        kind,
        series: BTreeMap::new(),
    });
    let key = label_text(labels);
    let mut value = family.series.remove(&key);
    update(&mut value);
    if let Some(value) = value {
        family.series.insert(key, value);
    }
}

/// Adds one to the counter `name` with `labels`.
pub fn count(name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
    with_series(name, help, "counter", labels, |value| {
        *value = Some(match value.take() {
            Some(Value::Counter(n)) => Value::Counter(n + 1),
            _ => Value::Counter(1),
        });
    });
}

/// Records one observation (in seconds) in the histogram `name` with `labels`.
pub fn observe(name: &'static str, help: &'static str, labels: &[(&str, &str)], seconds: f64) {
    with_series(name, help, "histogram", labels, |value| {
        let (mut counts, mut sum, mut count) = match value.take() {
            Some(Value::Histogram { counts, sum, count }) => (counts, sum, count),
            _ => ([0; BUCKETS.len()], 0.0, 0),
        };
        for (bound, bucket) in BUCKETS.iter().zip(counts.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        sum += seconds;
        count += 1;
        *value = Some(Value::Histogram { counts, sum, count });
    });
}

/// Sets the gauge `name` with `labels` to `value`.
pub fn gauge(name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
    with_series(name, help, "gauge", labels, |slot| {
        *slot = Some(Value::Gauge(value));
    });
}

/// Renders every family in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let mut out = String::new();
    let Ok(families) = registry().lock() else {
        return out;
    };
    for (name, family) in families.iter() {
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {}", family.kind);
        for (labels, value) in &family.series {
            match value {
                Value::Counter(n) => {
                    let _ = writeln!(out, "{name}{} {n}", braces(labels));
                }
                Value::Gauge(v) => {
                    let _ = writeln!(out, "{name}{} {v}", braces(labels));
                }
                Value::Histogram { counts, sum, count } => {
                    for (bound, n) in BUCKETS.iter().zip(counts) {
                        let le = with_label(labels, "le", &bound.to_string());
                        let _ = writeln!(out, "{name}_bucket{{{le}}} {n}");
                    }
                    let le = with_label(labels, "le", "+Inf");
                    let _ = writeln!(out, "{name}_bucket{{{le}}} {count}");
                    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
                    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
                }
            }
        }
    }
    out
}

fn label_text(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(key, value)| {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{value}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

fn with_label(labels: &str, key: &str, value: &str) -> String {
    if labels.is_empty() {
        format!("{key}=\"{value}\"")
    } else {
        format!("{labels},{key}=\"{value}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        count("kpi_test_total", "Test counter.", &[("outcome", "ok")]);
        count("kpi_test_total", "Test counter.", &[("outcome", "ok")]);
        observe(
            "kpi_test_seconds",
            "Test histogram.",
            &[("route", "/x")],
            0.02,
        );
        gauge("kpi_test_gauge", "Test gauge.", &[("source", "a\"b")], 1.5);
        let text = render();
        assert!(text.contains("# TYPE kpi_test_total counter\n"), "{text}");
        assert!(
            text.contains("kpi_test_total{outcome=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("kpi_test_seconds_bucket{route=\"/x\",le=\"0.01\"} 0\n"));
        assert!(text.contains("kpi_test_seconds_bucket{route=\"/x\",le=\"0.025\"} 1\n"));
        assert!(text.contains("kpi_test_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("kpi_test_seconds_count{route=\"/x\"} 1\n"));
        assert!(
            text.contains("kpi_test_gauge{source=\"a\\\"b\"} 1.5\n"),
            "{text}"
        );
    }
}
