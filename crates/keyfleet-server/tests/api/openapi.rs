//! `GET /openapi.json` describes every route the router mounts, and a property-based fuzzer (schemathesis)
//! driven by that document finds no 5xx answer and no answer that breaks the document.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::AzureApp;
use crate::support::*;

/// The methods a route can have; every other one must answer 405 on a mounted path.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn openapi_document_describes_every_mounted_route_and_nothing_else() {
    let app = TestApp::start().await;
    // No token: the document describes the API, not anything in it.
    let r = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["components"]["schemas"]["ErrorBody"]["required"], json!(["code", "codeDesc", "message"]));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.as_object().expect("item").keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let mounted: BTreeSet<(String, String)> =
        keyfleet_server::mounted_routes().into_iter().map(|(m, p)| (m.to_string(), p)).collect();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(undocumented.is_empty(), "mounted but not in /openapi.json: {undocumented:?}");
    assert!(unmounted.is_empty(), "in /openapi.json but not mounted: {unmounted:?}");

    // The route table is what the server really serves: on each mounted path, the recorded methods are
    // routed (anything but 405 and "no route") and every other method is a 405.
    let paths: BTreeSet<&String> = mounted.iter().map(|(_, p)| p).collect();
    assert!(paths.len() > 50, "{} paths", paths.len());
    for path in paths {
        let concrete =
            path.replace("{id}", "x1").replace("{backup_id}", "b1").replace("{name}", "g1").replace("{user_id}", "u1");
        for method in METHODS {
            let r = app.call(method, &concrete, None, None).await;
            if mounted.contains(&(method.to_string(), path.clone())) {
                assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}: {}", r.body);
                let no_route = r.status == StatusCode::NOT_FOUND
                    && r.body["message"].as_str().is_some_and(|m| m.starts_with("no route"));
                assert!(!no_route, "{method} {concrete}: {}", r.body);
            } else {
                assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {concrete}: {}", r.body);
            }
        }
    }

    // Every operation names its answers: success, and CCKM's error body for the rest.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|k| k.starts_with('2')), "{method} {path}: no success answer");
            assert_eq!(
                op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
            let public = op["security"] == json!([]);
            // /metrics takes no user token (only the optional metrics_token of the configuration).
            let expect_public = path.ends_with("healthz")
                || path.ends_with("readyz")
                || path == "/metrics"
                || path == "/openapi.json"
                || path.starts_with("/api/v1/auth/tokens") && method == "post"
                || path == "/api/v1/auth/changepw";
            assert_eq!(public, expect_public, "{method} {path}: security {}", op["security"]);
        }
    }
}

/// The Python of the test peers, and schemathesis's `st` beside it; a missing schemathesis fails the test.
fn schemathesis() -> PathBuf {
    let python = std::env::var_os("KEYFLEET_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv-peers/bin/python"));
    let st = python.parent().map(|d| d.join("st")).unwrap_or_default();
    assert!(
        st.exists(),
        "schemathesis is missing: no {} (tests/peers/requirements.txt lists it; `scripts/test` installs it into \
         .venv-peers, or set KEYFLEET_TEST_PYTHON to a venv's python that has it)",
        st.display()
    );
    st
}

/// Fixed, so a failure reproduces: `st run ... --seed 20261203`.
const SEED: &str = "20261203";
/// Test cases per operation in the fuzzing phase (the coverage phase adds its own boundary cases): about a
/// minute for the 84 operations on two cores.
const EXAMPLES: &str = "25";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let st = schemathesis();
    let env = AzureApp::start().await;
    let app = &env.app;
    seed_inventory(&env).await;
    // Where schemathesis leaves its report (NDJSON events, JUnit): the app's temporary directory, or
    // KEYFLEET_FUZZ_REPORT_DIR to keep it.
    // A fresh token: access tokens live 300 s, and the run should not outlive its own.
    let token = app.login("admin", ADMIN_PASSWORD).await;
    let report = std::env::var_os("KEYFLEET_FUZZ_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| app.dir.path().join("schemathesis"));
    let mut cmd = tokio::process::Command::new(&st);
    cmd.arg("run")
        .arg(format!("{}/openapi.json", app.url))
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--seed", SEED, "--max-examples", EXAMPLES, "--no-shrink"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // One worker: CPython 3.11's AST is not safe across schemathesis's worker threads (SystemError:
        // "AST constructor recursion depth mismatch").
        .args(["--workers", "1", "--tls-verify", "false", "--request-timeout", "30"])
        // No --max-time: with it, schemathesis repeats the fuzzing phase until the time is spent, and the run
        // would depend on the machine's speed. The examples bound the run instead.
        .args(["--suppress-health-check", "all"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--report", "ndjson,junit"])
        .arg("--report-dir")
        .arg(&report)
        // schemathesis keeps a cache (`.schemathesis/`) in its working directory: the app's, not the source tree.
        .current_dir(app.dir.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(400), cmd.output())
        .await
        .expect("schemathesis finishes")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found failures ({}):\n{stdout}\n{stderr}", out.status);
    // It really ran: operations were tested, none was skipped for an unusable schema.
    assert!(stdout.contains("passed"), "{stdout}\n{stderr}");
    assert!(!stdout.contains("errored"), "{stdout}\n{stderr}");
}

/// Something behind every list and get, so the fuzzer's answers carry real resources to check against the
/// document: AWS keys, a policy template, a finished bulk job; an Azure vault, keys, backups; a user and a group.
async fn seed_inventory(env: &AzureApp) {
    let app = &env.app;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 3);
    app.add_kms("fuzz-kms", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("fuzz-kms").await;
    let keys = app.key_ids("fuzz-kms").await;
    app.run_bulkjob(json!({"operation": "disablekey", "keys": [keys[0]]})).await;
    app.post(
        "/api/v1/cckm/aws/templates",
        json!({"name": "fuzz-template", "kms": "fuzz-kms", "key_admins": ["arn:aws:iam::000000000000:root"]}),
    )
    .await;
    env.add_vaults(&["fuzzvault"], 2).await;
    env.sync(&["fuzzvault"], true).await;
    app.post("/api/v1/usermgmt/groups", json!({"name": "fuzzers"})).await.ok();
    let (id, _) = app.user("fuzzer", Some("fuzzers")).await;
    let user: Value = app.get(&format!("/api/v1/usermgmt/users/{id}")).await.ok();
    assert_eq!(user["groups"], json!(["fuzzers"]));
}

/// Found by the fuzzer: the admin it ran as removed itself from `admin` (DELETE .../groups/admin/users/{own id})
/// and every admin-only route answered 403 from then on, with no administrator left to undo it. Like deleting
/// or disabling oneself, it is refused; removing another admin still works.
#[tokio::test]
async fn an_admin_cannot_remove_themselves_from_the_admin_group() {
    let app = TestApp::start().await;
    let users = app.get("/api/v1/usermgmt/users?limit=100").await.ok();
    let admin_id = users["resources"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "admin")
        .and_then(|u| u["user_id"].as_str())
        .expect("admin")
        .to_string();
    let r =
        app.call("DELETE", &format!("/api/v1/usermgmt/groups/admin/users/{admin_id}"), Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| m.contains("yourself")), "{}", r.body);
    assert_eq!(app.get("/api/v1/usermgmt/users").await.status, StatusCode::OK);
    assert_eq!(app.get("/api/v1/usermgmt/groups/admin").await.ok()["users_count"], 1);

    let (other, _) = app.user("second-admin", Some("admin")).await;
    let r = app.call("DELETE", &format!("/api/v1/usermgmt/groups/admin/users/{other}"), Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}
