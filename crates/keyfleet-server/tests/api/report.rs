//! A bulk job's report (`.../report?format=csv|ndjson`) and its failures by error code (`.../errors`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;
use crate::validation::app_with_keys;

/// The report's header line, as a client reads it.
const HEADER: &str = "key_id,key_ref,key_name,account,location,action,status,state_before,state_after,attempts,error_code,error_message,finished_at";

fn columns() -> Vec<&'static str> {
    HEADER.split(',').collect()
}

/// GET as `token`: status, the named headers, the body's text.
async fn fetch(app: &TestApp, path: &str, token: &str) -> (StatusCode, String, String, String) {
    let r = app.http.get(format!("{}{path}", app.url)).bearer_auth(token).send().await.unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (r.status(), ct, cd, r.text().await.unwrap())
}

/// A report's NDJSON lines, as the admin.
async fn ndjson(app: &TestApp, path: &str) -> Vec<Value> {
    let (status, _, _, text) = fetch(app, path, &app.admin).await;
    assert_eq!(status, 200, "{text}");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// RFC 4180 records (written here independently of the server's writer).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CRLF line ends"),
            (false, '\n') => panic!("bare LF outside quotes"),
            (false, c) => cell.push(c),
        }
        if !quoted && c == '\r' {
            row.push(std::mem::take(&mut cell));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(row.is_empty() && cell.is_empty(), "the last record ends with CRLF");
    rows
}

#[tokio::test]
async fn report_and_errors_show_every_item_of_a_job_with_failures() {
    let (app, ids) = app_with_keys(6).await;
    let keys = app.get("/api/v1/cckm/aws/keys?kms=acct&limit=1000").await.ok()["resources"].clone();
    let key = |id: &str| keys.as_array().unwrap().iter().find(|k| k["id"] == id).unwrap()["aws_param"].clone();
    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1");
    let aws_id = |i: usize| key(&ids[i])["KeyID"].as_str().unwrap().to_string();
    sdk.create_alias().alias_name("alias/report-one").target_key_id(aws_id(1)).send().await.unwrap();
    app.sync("acct").await;
    // Two keys gone from AWS (NotFoundException), one pending deletion (KMSInvalidStateException).
    for i in [2, 4] {
        assert!(app.fake.fake.delete_key_now(FAKE_ACCOUNT, "us-east-1", &aws_id(i)));
    }
    sdk.schedule_key_deletion().key_id(aws_id(3)).pending_window_in_days(7).send().await.unwrap();
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    let id = job["id"].as_str().unwrap();
    let items = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?limit=1000")).await.ok()["resources"].clone();
    let items = items.as_array().unwrap();

    let base = format!("/api/v1/cckm/aws/bulkjob/{id}");
    let (status, ct, cd, text) = fetch(&app, &format!("{base}/report?format=csv"), &app.admin).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ct, "text/csv; charset=utf-8");
    assert_eq!(cd, format!("attachment; filename=\"bulkjob-{id}-report.csv\""));
    let rows = parse_csv(&text);
    assert_eq!(rows[0], columns());
    assert_eq!(rows.len(), 1 + ids.len());
    for (n, row) in rows[1..].iter().enumerate() {
        let cell = |c: &str| row[columns().iter().position(|x| *x == c).unwrap()].as_str();
        let item = &items[n];
        let (k, i) = (key(&ids[n]), item);
        assert_eq!(cell("key_id"), ids[n]);
        assert_eq!(cell("key_ref"), k["Arn"].as_str().unwrap());
        assert_eq!(cell("key_name"), if n == 1 { "alias/report-one" } else { "" });
        assert_eq!(cell("account"), FAKE_ACCOUNT);
        assert_eq!(cell("location"), "us-east-1");
        assert_eq!(cell("action"), "disablekey");
        assert_eq!(cell("status"), i["status"].as_str().unwrap());
        assert_eq!(cell("state_before"), i["state_before"].as_str().unwrap_or(""));
        assert_eq!(cell("state_after"), i["state_after"].as_str().unwrap_or(""));
        assert_eq!(cell("attempts"), i["attempts"].to_string());
        assert_eq!(cell("error_code"), i["last_error_code"].as_str().unwrap_or(""));
        assert_eq!(cell("error_message"), i["last_error_message"].as_str().unwrap_or(""));
        assert!(!cell("finished_at").is_empty());
        let expected = match n {
            2 | 4 => ("failed", "NotFoundException"),
            3 => ("failed", "KMSInvalidStateException"),
            _ => ("succeeded", ""),
        };
        assert_eq!((cell("status"), cell("error_code")), expected, "row {n}: {row:?}");
        if expected.0 == "succeeded" {
            assert_eq!((cell("state_before"), cell("state_after")), ("Enabled", "Disabled"));
        }
    }

    // The same lines as NDJSON, with nulls where CSV has empty cells and attempts as a number.
    let (status, ct, cd, text) = fetch(&app, &format!("{base}/report?format=ndjson"), &app.admin).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ct, "application/x-ndjson");
    assert_eq!(cd, format!("attachment; filename=\"bulkjob-{id}-report.ndjson\""));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), ids.len());
    assert!(text.ends_with('\n'));
    for (line, row) in lines.iter().zip(&rows[1..]) {
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), columns().len(), "{line}");
        for (c, cell) in columns().iter().zip(row) {
            let v = &line[*c];
            let as_cell = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(&as_cell, cell, "{c} in {line}");
        }
        assert!(line["attempts"].is_i64());
        assert!(line["key_name"].is_null() || line["key_name"] == "alias/report-one");
    }
    // Without `format`, CSV.
    let (status, ct, _, _) = fetch(&app, &format!("{base}/report"), &app.admin).await;
    assert_eq!((status.as_u16(), ct.as_str()), (200, "text/csv; charset=utf-8"));

    // Errors: grouped by code, largest group first, sample keys in job order.
    let errors = app.get(&format!("{base}/errors")).await.ok();
    assert_eq!(errors["job_id"], id);
    assert_eq!(errors["failed"], 3);
    let groups = errors["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{errors}");
    assert_eq!(groups[0]["error_code"], "NotFoundException");
    assert_eq!(groups[0]["count"], 2);
    assert_eq!(groups[0]["sample_keys"], json!([ids[2], ids[4]]));
    assert_eq!(groups[0]["error_message"], items[2]["last_error_message"]);
    assert_eq!(groups[1]["error_code"], "KMSInvalidStateException");
    assert_eq!(groups[1]["count"], 1);
    assert_eq!(groups[1]["sample_keys"], json!([ids[3]]));
}

#[tokio::test]
async fn error_groups_show_at_most_five_keys() {
    let (app, ids) = app_with_keys(7).await;
    for k in app.get("/api/v1/cckm/aws/keys?kms=acct&limit=1000").await.ok()["resources"].as_array().unwrap() {
        let aws = k["aws_param"]["KeyID"].as_str().unwrap();
        assert!(app.fake.fake.delete_key_now(FAKE_ACCOUNT, "us-east-1", aws));
    }
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    let errors = app.get(&format!("/api/v1/cckm/aws/bulkjob/{}/errors", job["id"].as_str().unwrap())).await.ok();
    assert_eq!(errors["groups"].as_array().unwrap().len(), 1, "{errors}");
    assert_eq!(errors["groups"][0]["count"], 7);
    assert_eq!(errors["groups"][0]["sample_keys"], json!(ids[..5]));
}

#[tokio::test]
async fn report_and_errors_are_read_like_the_job() {
    let (app, ids) = app_with_keys(1).await;
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    let id = job["id"].as_str().unwrap();
    let base = format!("/api/v1/cckm/aws/bulkjob/{id}");
    let admin = app.admin.clone();

    // A job without failures has no error groups.
    let errors = app.get(&format!("{base}/errors")).await.ok();
    assert_eq!(errors["groups"], json!([]));

    // Unknown job, or another cloud's: 404.
    let unknown = "/api/v1/cckm/aws/bulkjob/3f1c9a52-7d7e-4c8e-9a45-0b8f2d1e6c11";
    for path in [
        format!("{unknown}/report"),
        format!("{unknown}/errors"),
        format!("/api/v1/cckm/azure/bulkjobs/{id}/report"),
        format!("/api/v1/cckm/azure/bulkjobs/{id}/errors"),
    ] {
        assert_eq!(fetch(&app, &path, &admin).await.0, 404, "{path}");
    }

    // Unknown format or parameter: 400.
    let (status, _, _, text) = fetch(&app, &format!("{base}/report?format=xlsx"), &admin).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("format"), "{text}");
    assert_eq!(fetch(&app, &format!("{base}/report?formats=csv"), &admin).await.0, 400);

    // A CCKM User without access to the keys' container may not read the job, nor its report.
    let (_, token) = app.user("alice", Some("CCKM Users")).await;
    for path in [base.clone(), format!("{base}/report"), format!("{base}/errors")] {
        assert_eq!(fetch(&app, &path, &token).await.0, 403, "{path}");
    }
}

#[tokio::test]
async fn a_report_over_several_store_pages_has_every_item_once() {
    // Over 1,000 items, the report is read from the store in more than one page; a plan runs nothing.
    let app = TestApp::start().await;
    let aws = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 1_030);
    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1");
    sdk.disable_key().key_id(&aws[0]).send().await.unwrap();
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    let body = json!({"operation": "disablekey", "selector": {"kms": ["acct"]}, "max_items": 1030, "dry_run": true});
    let created = app.post("/api/v1/cckm/aws/bulkjob", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();

    let (status, _, _, text) =
        fetch(&app, &format!("/api/v1/cckm/aws/bulkjob/{id}/report?format=ndjson"), &app.admin).await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1_030);
    let seen: std::collections::HashSet<&str> = lines.iter().map(|l| l["key_id"].as_str().unwrap()).collect();
    assert_eq!(seen.len(), 1_030, "every item exactly once");
    let listed = app.key_ids("acct").await;
    assert!(listed.iter().all(|k| seen.contains(k.as_str())), "the report's keys are the container's");
    assert!(lines.iter().all(|l| l["status"] == "planned" && l["finished_at"].is_null()));
    // A planned item's action is what confirming would do to it.
    let already: Vec<&Value> = lines.iter().filter(|l| l["action"] != "disablekey").collect();
    assert_eq!(already.len(), 1, "{already:?}");
    assert_eq!(already[0]["action"], "none (already Disabled)");
    assert!(already[0]["key_ref"].as_str().unwrap().ends_with(&aws[0]));

    let (status, _, _, text) = fetch(&app, &format!("/api/v1/cckm/aws/bulkjob/{id}/report"), &app.admin).await;
    assert_eq!(status, 200);
    assert_eq!(parse_csv(&text).len(), 1 + 1_030);
}

#[tokio::test]
async fn an_azure_report_names_the_vault_and_the_backed_up_key() {
    let env = crate::azure::AzureApp::start().await;
    env.add_vaults(&["kv-a"], 2).await;
    env.sync(&["kv-a"], false).await;
    let keys = env.keys("kv-a").await;
    let mut backups = Vec::new();
    for (_, id) in &keys {
        backups.push(env.backup(id, "b").await["id"].as_str().unwrap().to_string());
    }
    let body = json!({"operation": "delete-key-backups", "delete_key_backups_param": {"backups": backups},
                      "dry_run": true});
    let r = env.app.post("/api/v1/cckm/azure/bulkjobs", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let base = format!("/api/v1/cckm/azure/bulkjobs/{}", r.body["id"].as_str().unwrap());

    // Planned: each backup with its key's kid and name, the subscription and the vault.
    let lines = ndjson(&env.app, &format!("{base}/report?format=ndjson")).await;
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let n = backups.iter().position(|b| line["key_id"] == b.as_str()).expect("a backup of the job");
        let name = &keys[n].0;
        let kid = line["key_ref"].as_str().unwrap();
        assert!(kid.starts_with("https://") && kid.contains(&format!("/keys/{name}/")), "{line}");
        assert_eq!(line["key_name"], name.as_str());
        assert_eq!(line["account"], crate::azure::SUBSCRIPTION);
        assert_eq!(line["location"], "kv-a");
        assert_eq!((&line["status"], &line["action"]), (&json!("planned"), &json!("delete-key-backups")));
    }

    // Once deleted, the backups are no longer in the inventory: the vault is still known.
    let r = env.app.post(&format!("{base}/confirm"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.app.wait_until_done(&base).await;
    for line in ndjson(&env.app, &format!("{base}/report?format=ndjson")).await {
        assert_eq!(line["status"], "succeeded", "{line}");
        assert_eq!((&line["key_ref"], &line["key_name"]), (&Value::Null, &Value::Null));
        assert_eq!((&line["account"], &line["location"]), (&json!(crate::azure::SUBSCRIPTION), &json!("kv-a")));
        assert!(line["finished_at"].is_string());
    }
    let errors = env.app.get(&format!("{base}/errors")).await.ok();
    assert_eq!(errors["groups"], json!([]));
}
