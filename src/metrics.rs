//! Process metrics in Prometheus' text format: a few lock-free counters, gauges and histograms,
//! with no registry crate. Every layer above storage records into one [`Metrics`].
//!
//! This module imports nothing of the crate, so every layer may use it: the segment log times
//! its fdatasync rounds with the same [`Histogram`], and `/metrics` writes every line through
//! [`write_metric`] and [`write_histogram`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// A value that only grows.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// The value now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of latency buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]), lock-free.
#[derive(Debug)]
pub struct Histogram {
    /// `[i]` counts observations within `LATENCY_BUCKETS[i]` (and above the previous bound);
    /// slower ones only count in `count`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
        // Counted last, so a reader never sees an observation in the count before its bucket.
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `_bucket`, `_sum` and `_count` lines of one labelled series (`labels` is
    /// `key="value",...` or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        // Read after the buckets (an observation counts in its bucket first): count >= each.
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric.
fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes one counter or gauge: its HELP and TYPE lines and one line per `(labels, value)`
/// sample (`labels` is `key="value",...` or empty).
pub fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    write_header(out, name, kind, help);
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// Writes one histogram metric: its HELP and TYPE lines and one series per `(labels, histogram)`.
pub fn write_histogram(out: &mut String, name: &str, help: &str, series: &[(&str, &Histogram)]) {
    write_header(out, name, "histogram", help);
    for (labels, h) in series {
        h.render(out, name, labels);
    }
}

/// HTTP requests by route and status, with latency by route.
#[derive(Default, Debug)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl HttpMetrics {
    /// Records one finished request.
    pub fn record(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_default() += 1;
        }
        let hist = self.latency.lock().ok().map(|mut m| match m.get(route) {
            Some(h) => h.clone(),
            None => m.entry(route.to_string()).or_default().clone(),
        });
        if let Some(h) = hist {
            h.observe(seconds);
        }
    }
}

/// Everything a node counts.
#[derive(Default, Debug)]
pub struct Metrics {
    /// Open SSE readers.
    pub sse_readers: Gauge,
    /// Records committed through this node's proposer (as leader).
    pub records_proposed: Counter,
    /// HTTP requests.
    pub http: HttpMetrics,
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Writes the HTTP and reader metrics in Prometheus text format.
    pub fn render_into(&self, out: &mut String) {
        write_metric(
            out,
            "yakt_sse_readers",
            "gauge",
            "Open server-sent-event readers.",
            &[("", self.sse_readers.get() as f64)],
        );
        write_metric(
            out,
            "yakt_records_proposed_total",
            "counter",
            "Records committed through this node as leader.",
            &[("", self.records_proposed.get() as f64)],
        );
        let requests: Vec<(String, f64)> = match self.http.requests.lock() {
            Ok(m) => m
                .iter()
                .map(|((route, status), n)| {
                    (
                        format!("route=\"{}\",status=\"{status}\"", label(route)),
                        *n as f64,
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let requests: Vec<(&str, f64)> = requests.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        write_metric(
            out,
            "yakt_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
            &requests,
        );
        let latency: Vec<(String, std::sync::Arc<Histogram>)> = match self.http.latency.lock() {
            Ok(m) => m
                .iter()
                .map(|(route, h)| (format!("route=\"{}\"", label(route)), h.clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        let latency: Vec<(&str, &Histogram)> =
            latency.iter().map(|(l, h)| (l.as_str(), &**h)).collect();
        write_histogram(
            out,
            "yakt_http_request_duration_seconds",
            "HTTP request latency by route.",
            &latency,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(0.0002);
        h.observe(0.003);
        h.observe(10.0);
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.00025\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 2"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3"), "{out}");
        assert!(out.contains("x_count 3"), "{out}");
    }

    #[test]
    fn http_metrics_render_by_route_and_status() {
        let m = Metrics::default();
        m.http.record("/create_topic", 200, 0.001);
        m.http.record("/create_topic", 409, 0.001);
        m.http.record("/create_topic", 200, 0.002);
        let mut out = String::new();
        m.render_into(&mut out);
        assert!(
            out.contains("yakt_http_requests_total{route=\"/create_topic\",status=\"200\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("yakt_http_requests_total{route=\"/create_topic\",status=\"409\"} 1"),
            "{out}"
        );
    }
}
