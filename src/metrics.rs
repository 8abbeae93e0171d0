//! Process metrics in Prometheus' text format: a few lock-free counters, gauges and histograms,
//! with no registry crate. Every layer above storage records into one [`Metrics`].

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

/// A latency histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
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
        let hist = self
            .latency
            .lock()
            .ok()
            .map(|mut m| m.entry(route.to_string()).or_default().clone());
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
        let _ = writeln!(out, "# HELP yakt_sse_readers Open server-sent-event readers.\n# TYPE yakt_sse_readers gauge");
        let _ = writeln!(out, "yakt_sse_readers {}", self.sse_readers.get());
        let _ = writeln!(out, "# HELP yakt_records_proposed_total Records committed through this node as leader.\n# TYPE yakt_records_proposed_total counter");
        let _ = writeln!(
            out,
            "yakt_records_proposed_total {}",
            self.records_proposed.get()
        );
        let _ = writeln!(out, "# HELP yakt_http_requests_total HTTP requests by route and status.\n# TYPE yakt_http_requests_total counter");
        if let Ok(m) = self.http.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "yakt_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    label(route)
                );
            }
        }
        let _ = writeln!(out, "# HELP yakt_http_request_duration_seconds HTTP request latency by route.\n# TYPE yakt_http_request_duration_seconds histogram");
        if let Ok(m) = self.http.latency.lock() {
            for (route, h) in m.iter() {
                h.render(
                    out,
                    "yakt_http_request_duration_seconds",
                    &format!("route=\"{}\"", label(route)),
                );
            }
        }
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
