//! A small metrics registry and its Prometheus text encoding.
//!
//! keyfleet's metrics are a fixed set, known at compile time: one [`Metrics`] value holds every counter and
//! histogram family, the engine, the services and the HTTP edge each record into it through an
//! `Arc<Metrics>`, and `/metrics` renders it ([`Metrics::render`]) followed by gauges read at scrape time
//! ([`Gauges`]). A family keeps its series in a map behind a mutex: recording is a lock, a lookup and an
//! add, far below the cost of the cloud call or request it counts.
//!
//! The names, types and labels are listed in `docs/DEPLOYMENT.md`; a test there keeps the list true.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Bucket bounds (seconds) of the latency histograms: 5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Counters with `N` labels.
#[derive(Debug)]
pub struct CounterFamily<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    series: Mutex<BTreeMap<[String; N], u64>>,
}

impl<const N: usize> CounterFamily<N> {
    const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self { name, help, labels, series: Mutex::new(BTreeMap::new()) }
    }

    /// Adds `n` to the series with these label values.
    pub fn add(&self, values: [&str; N], n: u64) {
        let key = values.map(str::to_owned);
        *self.series.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += n;
    }

    pub fn inc(&self, values: [&str; N]) {
        self.add(values, 1);
    }

    /// The series' value (0 if never recorded).
    pub fn get(&self, values: [&str; N]) -> u64 {
        let key = values.map(str::to_owned);
        self.series.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (values, n) in self.series.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            sample(out, self.name, "", &self.labels, values, None, *n as f64);
        }
    }
}

#[derive(Debug, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`LATENCY_BUCKETS`]; the last slot is `+Inf`.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Latency histograms with `N` labels, over [`LATENCY_BUCKETS`].
#[derive(Debug)]
pub struct HistogramFamily<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    series: Mutex<BTreeMap<[String; N], Histogram>>,
}

impl<const N: usize> HistogramFamily<N> {
    const fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self { name, help, labels, series: Mutex::new(BTreeMap::new()) }
    }

    pub fn observe(&self, values: [&str; N], took: Duration) {
        let secs = took.as_secs_f64();
        let key = values.map(str::to_owned);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let h = series.entry(key).or_insert_with(|| Histogram {
            buckets: vec![0; LATENCY_BUCKETS.len() + 1],
            sum: 0.0,
            count: 0,
        });
        let i = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        h.buckets[i] += 1;
        h.sum += secs;
        h.count += 1;
    }

    /// Observations of the series (0 if none).
    pub fn count(&self, values: [&str; N]) -> u64 {
        let key = values.map(str::to_owned);
        self.series.lock().unwrap_or_else(|e| e.into_inner()).get(&key).map_or(0, |h| h.count)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (values, h) in self.series.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut cumulative = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                sample(out, self.name, "_bucket", &self.labels, values, Some(&le), cumulative as f64);
            }
            sample(out, self.name, "_sum", &self.labels, values, None, h.sum);
            sample(out, self.name, "_count", &self.labels, values, None, h.count as f64);
        }
    }
}

/// Every counter and histogram keyfleet records. One per process, shared as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    pub jobs_created: CounterFamily<3>,
    pub items: CounterFamily<3>,
    pub cloud_calls: CounterFamily<3>,
    pub cloud_call_seconds: HistogramFamily<2>,
    pub cloud_throttles: CounterFamily<2>,
    pub cloud_retries: CounterFamily<2>,
    pub http_requests: CounterFamily<3>,
    pub http_request_seconds: HistogramFamily<2>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub const fn new() -> Self {
        Self {
            jobs_created: CounterFamily::new(
                "keyfleet_jobs_created_total",
                "Bulk jobs created on this node (mode: run, or plan for a dry run).",
                ["cloud", "operation", "mode"],
            ),
            items: CounterFamily::new(
                "keyfleet_items_total",
                "Bulk-job item attempts finished on this node, by outcome (succeeded, failed, skipped, retry).",
                ["cloud", "operation", "outcome"],
            ),
            cloud_calls: CounterFamily::new(
                "keyfleet_cloud_calls_total",
                "Calls to a cloud API, by action and outcome (ok, or the error kind).",
                ["cloud", "action", "outcome"],
            ),
            cloud_call_seconds: HistogramFamily::new(
                "keyfleet_cloud_call_duration_seconds",
                "Latency of cloud API calls (pacing waits excluded).",
                ["cloud", "action"],
            ),
            cloud_throttles: CounterFamily::new(
                "keyfleet_cloud_throttles_total",
                "Calls the cloud refused with throttling (AWS ThrottlingException, HTTP 429).",
                ["cloud", "action"],
            ),
            cloud_retries: CounterFamily::new(
                "keyfleet_cloud_retries_total",
                "Retries scheduled after a retryable cloud error (an item put back to pending, a Key Vault call repeated).",
                ["cloud", "action"],
            ),
            http_requests: CounterFamily::new(
                "keyfleet_http_requests_total",
                "HTTP requests answered, by route template and status.",
                ["method", "route", "status"],
            ),
            http_request_seconds: HistogramFamily::new(
                "keyfleet_http_request_duration_seconds",
                "Latency of HTTP requests, by route template.",
                ["method", "route"],
            ),
        }
    }

    /// The counters and histograms in Prometheus text format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        self.jobs_created.render(out);
        self.items.render(out);
        self.cloud_calls.render(out);
        self.cloud_call_seconds.render(out);
        self.cloud_throttles.render(out);
        self.cloud_retries.render(out);
        self.http_requests.render(out);
        self.http_request_seconds.render(out);
    }
}

/// A gauge family read at scrape time, rendered with the same encoding.
pub struct Gauges<'a> {
    name: &'static str,
    help: &'static str,
    labels: &'a [&'static str],
    samples: Vec<(Vec<String>, f64)>,
}

impl<'a> Gauges<'a> {
    pub fn new(name: &'static str, help: &'static str, labels: &'a [&'static str]) -> Self {
        Self { name, help, labels, samples: Vec::new() }
    }

    pub fn set(&mut self, values: &[&str], value: f64) -> &mut Self {
        self.samples.push((values.iter().map(|v| (*v).to_owned()).collect(), value));
        self
    }

    pub fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "gauge");
        for (values, v) in &self.samples {
            sample(out, self.name, "", self.labels, values, None, *v);
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, suffix: &str, labels: &[&str], values: &[String], le: Option<&str>, v: f64) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs: Vec<(&str, &str)> =
        labels.iter().copied().zip(values.iter().map(String::as_str)).chain(le.map(|le| ("le", le))).collect();
    if !pairs.is_empty() {
        out.push('{');
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(v));
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges_in_prometheus_text() {
        let m = Metrics::new();
        m.items.inc(["aws", "disablekey", "succeeded"]);
        m.items.add(["aws", "disablekey", "succeeded"], 2);
        m.http_request_seconds.observe(["GET", "/x"], Duration::from_millis(30));
        m.http_request_seconds.observe(["GET", "/x"], Duration::from_secs(60));
        let mut out = String::new();
        m.render(&mut out);
        Gauges::new("keyfleet_g", "a \"gauge\"", &["a"]).set(&["q\"\\\n"], 1.5).render(&mut out);
        assert!(out.contains("# TYPE keyfleet_items_total counter\n"), "{out}");
        assert!(
            out.contains("keyfleet_items_total{cloud=\"aws\",operation=\"disablekey\",outcome=\"succeeded\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("keyfleet_http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"0.025\"} 0\n")
        );
        assert!(
            out.contains("keyfleet_http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"0.05\"} 1\n")
        );
        assert!(
            out.contains("keyfleet_http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"30\"} 1\n")
        );
        assert!(
            out.contains("keyfleet_http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"+Inf\"} 2\n")
        );
        assert!(out.contains("keyfleet_http_request_duration_seconds_count{method=\"GET\",route=\"/x\"} 2\n"));
        assert!(out.contains("keyfleet_g{a=\"q\\\"\\\\\\n\"} 1.5\n"), "{out}");
        assert_eq!(m.items.get(["aws", "disablekey", "succeeded"]), 3);
        assert_eq!(m.http_request_seconds.count(["GET", "/x"]), 2);
    }
}
