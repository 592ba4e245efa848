//! Operating endpoints over HTTP: `/readyz` follows the database (PostgreSQL stopped and started again under a
//! running server), `/metrics` is valid Prometheus text whose counters move with a job, and its token.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const REGION: &str = "us-east-1";
const METRICS_TOKEN: &str = "metrics-test-token";

/// A PostgreSQL cluster of this test's own (`scripts/pg-test-cluster`), so it can be stopped without
/// disturbing other tests; stopped and removed on drop.
struct OwnCluster {
    dir: PathBuf,
}

impl OwnCluster {
    fn script(&self, cmd: &str) -> String {
        let out = std::process::Command::new(workspace_root().join("scripts/pg-test-cluster"))
            .arg(cmd)
            .arg(&self.dir)
            .output()
            .expect("run scripts/pg-test-cluster");
        assert!(out.status.success(), "pg-test-cluster {cmd}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn start() -> (OwnCluster, String) {
        // Under /tmp directly: as root the cluster belongs to `postgres`, which must reach the directory.
        let c = OwnCluster { dir: PathBuf::from(format!("/tmp/kf-readyz-{}", uuid::Uuid::new_v4().simple())) };
        let url = c.script("start");
        (c, url)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(workspace_root().join("scripts/pg-test-cluster"))
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn readyz(app: &TestApp) -> Reply {
    app.call("GET", "/readyz", None, None).await
}

/// Polls `/readyz` until it answers `status` (the server notices within a few seconds; the deadline only
/// bounds a broken run).
async fn wait_for_readyz(app: &TestApp, status: StatusCode) -> Reply {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = readyz(app).await;
        if r.status == status {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status}; last: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_is_503_while_postgresql_is_down_and_200_when_it_is_back() {
    if std::env::var("KEYFLEET_TEST_BACKEND").as_deref() != Ok("postgres") {
        // On SQLite the database is a local file: ready as soon as the server serves.
        let app = TestApp::start().await;
        let r = readyz(&app).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"status": "ready"})));
        return;
    }
    let (cluster, url) = OwnCluster::start();
    let app = TestApp::start_with(|a| {
        a.database_url = Some(url.clone());
        a.lease_ttl_secs = Some(2);
    })
    .await;
    let r = readyz(&app).await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"status": "ready"})));
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);

    cluster.script("stop");
    let down = wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(down.body["status"], "not ready", "{}", down.body);
    assert!(down.body["checks"]["database"].as_str().is_some(), "the database check failed: {}", down.body);
    assert!(down.body["reason"].as_str().unwrap().starts_with("database: "), "{}", down.body);
    // The process is alive all the same.
    assert_eq!(app.call("GET", "/healthz", None, None).await.status, StatusCode::OK);

    let again = cluster.script("start");
    assert_eq!(again, url, "the cluster came back on its port");
    let up = wait_for_readyz(&app, StatusCode::OK).await;
    assert_eq!(up.body, json!({"status": "ready"}));
    // And the node works again: a write through the API.
    app.post("/api/v1/usermgmt/users", json!({"username": "after-outage", "password": "after-outage-password"}))
        .await
        .ok();
}

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text format 0.0.4 strictly: every line a `# HELP`, a `# TYPE` or a sample; every sample
/// of a declared family (histograms: `_bucket` with `le`, `_sum`, `_count`); label values escaped; one TYPE per
/// family, before its samples; histogram buckets cumulative, ending in `+Inf` equal to `_count`.
fn parse_prometheus(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, tail) = (parts.next().unwrap(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(valid_name(name), "bad metric name in {line:?}");
            match kind {
                "HELP" => assert!(!tail.is_empty(), "empty HELP: {line:?}"),
                "TYPE" => {
                    assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail), "{line:?}");
                    assert!(types.insert(name.to_string(), tail.to_string()).is_none(), "second TYPE: {line:?}");
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "blank line in the scrape");
        let (name_end, mut labels) = (line.find(['{', ' ']).expect("a sample"), BTreeMap::new());
        let name = &line[..name_end];
        assert!(valid_name(name), "bad sample name in {line:?}");
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let b = body.as_bytes();
            let mut at = 0;
            loop {
                if b[at] == b'}' {
                    rest = &body[at + 1..];
                    break;
                }
                let eq = at + body[at..].find("=\"").expect("label=\"value\"");
                let key = &body[at..eq];
                assert!(valid_name(key), "bad label name {key:?} in {line:?}");
                let mut value = String::new();
                let mut k = eq + 2;
                loop {
                    match b[k] {
                        b'"' => break,
                        b'\\' => {
                            k += 1;
                            match b[k] {
                                b'n' => value.push('\n'),
                                c @ (b'\\' | b'"') => value.push(c as char),
                                c => panic!("bad escape \\{} in {line:?}", c as char),
                            }
                            k += 1;
                        }
                        _ => {
                            let c = body[k..].chars().next().unwrap();
                            value.push(c);
                            k += c.len_utf8();
                        }
                    }
                }
                assert!(labels.insert(key.to_string(), value).is_none(), "label twice in {line:?}");
                at = k + 1;
                match b[at] {
                    b',' => at += 1,
                    b'}' => {}
                    c => panic!("expected , or }} after a label, got {:?} in {line:?}", c as char),
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("a space before the value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        let kind = types.get(family).unwrap_or_else(|| panic!("sample before its TYPE: {line:?}"));
        if kind == "histogram" {
            assert_eq!(name.ends_with("_bucket"), labels.contains_key("le"), "le only on buckets: {line:?}");
        }
        if kind == "counter" {
            assert!(value >= 0.0, "negative counter {line:?}");
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    // Histograms: cumulative buckets, +Inf last and equal to _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let mut key = s.labels.clone();
            let le = key.remove("le").unwrap();
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            series.entry(key).or_default().push((le, s.value));
        }
        for (key, buckets) in series {
            assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{family} {key:?} {buckets:?}");
            assert_eq!(buckets.last().unwrap().0, f64::INFINITY);
            let count = samples.iter().find(|s| s.name == format!("{family}_count") && s.labels == key).unwrap();
            assert_eq!(buckets.last().unwrap().1, count.value, "{family} {key:?}");
        }
    }
    (types, samples)
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples.iter().find(|s| s.name == name && s.labels == want).map_or(0.0, |s| s.value)
}

async fn scrape(app: &TestApp, url: &str, token: Option<&str>) -> (HashMap<String, String>, Vec<Sample>) {
    let mut req = app.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    parse_prometheus(&resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_a_job() {
    let app = TestApp::start_with(|a| {
        a.metrics_token = Some(METRICS_TOKEN.into());
        a.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = format!("{}/metrics", app.url);
    let no_token = app.http.get(&metrics).send().await.unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let wrong = app.http.get(&metrics).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // An API token is not the metrics token either.
    let jwt = app.http.get(&metrics).bearer_auth(&app.admin).send().await.unwrap();
    assert_eq!(jwt.status(), StatusCode::UNAUTHORIZED);

    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, REGION);
    for i in 0..3 {
        sdk.create_key().description(format!("metrics key {i}")).send().await.unwrap();
    }
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &[REGION]).await;
    assert_eq!(app.sync("acct").await["overall_status"], "completed");
    let ids = app.key_ids("acct").await;

    let (types, before) = scrape(&app, &metrics, Some(METRICS_TOKEN)).await;
    // docs/DEPLOYMENT.md lists every metric with its type: exactly the families served.
    let doc = std::fs::read_to_string(workspace_root().join("docs/DEPLOYMENT.md")).unwrap();
    let documented: HashMap<String, String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `keyfleet_"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            (format!("keyfleet_{}", cells[0].trim_end_matches('`')), cells[1].to_string())
        })
        .collect();
    assert_eq!(types, documented, "the metrics table of docs/DEPLOYMENT.md");
    // The sync's calls were counted too.
    let list_keys = [("cloud", "aws"), ("action", "ListKeys"), ("outcome", "ok")];
    assert!(value(&before, "keyfleet_cloud_calls_total", &list_keys) >= 1.0);
    assert_eq!(
        value(&before, "keyfleet_cloud_calls_total", &[("cloud", "aws"), ("action", "DescribeKey"), ("outcome", "ok")]),
        3.0
    );
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    let (_, after) = scrape(&app, &metrics, Some(METRICS_TOKEN)).await;

    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    let op = [("cloud", "aws"), ("operation", "disablekey")];
    assert_eq!(moved("keyfleet_jobs_created_total", &[op[0], op[1], ("mode", "run")]), 1.0);
    assert_eq!(moved("keyfleet_items_total", &[op[0], op[1], ("outcome", "succeeded")]), 3.0);
    let disable = [("cloud", "aws"), ("action", "DisableKey")];
    assert_eq!(moved("keyfleet_cloud_calls_total", &[disable[0], disable[1], ("outcome", "ok")]), 3.0);
    assert_eq!(moved("keyfleet_cloud_call_duration_seconds_count", &disable), 3.0);
    assert_eq!(
        moved(
            "keyfleet_http_requests_total",
            &[("method", "POST"), ("route", "/api/v1/cckm/aws/bulkjob"), ("status", "201")]
        ),
        1.0
    );
    assert!(
        moved(
            "keyfleet_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/api/v1/cckm/aws/bulkjob/{id}")]
        ) >= 1.0,
        "the job was polled"
    );
    assert_eq!(moved("keyfleet_jobs", &[op[0], op[1], ("status", "completed")]), 1.0);
    let pool = if app.is_postgres() { "main" } else { "writer" };
    assert!(value(&after, "keyfleet_db_pool_max_connections", &[("pool", pool)]) >= 1.0);

    // The separate listener serves the same text, and the probes.
    let ops = app.server.as_ref().unwrap().metrics_addr.expect("metrics_listen");
    let (_, separate) = scrape(&app, &format!("http://{ops}/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!(
        value(&separate, "keyfleet_jobs_created_total", &[op[0], op[1], ("mode", "run")]),
        value(&after, "keyfleet_jobs_created_total", &[op[0], op[1], ("mode", "run")])
    );
    let ready: Value = app.http.get(format!("http://{ops}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready"}));
}
