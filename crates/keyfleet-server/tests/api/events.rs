//! A bulk job's progress as server-sent events (`.../events`): `progress` while it runs, `end` when it is done,
//! `Last-Event-ID` on reconnect, and the same readers as `GET .../bulkjob/{id}`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;
use crate::validation::app_with_keys;

/// An open event stream, read an event at a time (parsed here independently of the server's writer).
struct Events {
    response: reqwest::Response,
    buffer: String,
}

/// One event: its `event:` name, `id:` and parsed `data:`.
#[derive(Debug)]
struct Sse {
    event: String,
    id: String,
    data: Value,
}

impl Events {
    async fn open(app: &TestApp, path: &str, token: &str, last_event_id: Option<&str>) -> Events {
        let mut r = app.http.get(format!("{}{path}", app.url)).bearer_auth(token);
        if let Some(id) = last_event_id {
            r = r.header("Last-Event-ID", id);
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let ct = response.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Events { response, buffer: String::new() }
    }

    /// The next event, skipping keep-alive comments; `None` when the server closed the stream.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), String::new(), String::new());
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("event", v)) => event = v.trim_start().into(),
                        Some(("id", v)) => id = v.trim_start().into(),
                        Some(("data", v)) => data.push_str(v.trim_start()),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(Sse { event, id, data: serde_json::from_str(&data).unwrap() });
            }
            // A guard against a hung test, not a timing assertion.
            let chunk =
                tokio::time::timeout(Duration::from_secs(120), self.response.chunk()).await.unwrap().unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

const JOBS: &str = "/api/v1/cckm/aws/bulkjob";

#[tokio::test]
async fn a_job_streams_its_progress_until_the_end_event() {
    let (app, ids) = app_with_keys(40).await;
    let planned = app.post(JOBS, json!({"operation": "disablekey", "keys": ids, "dry_run": true})).await.ok();
    let id = planned["id"].as_str().unwrap();
    let path = format!("{JOBS}/{id}/events");

    // A planned job: one progress event with every item planned, and the stream stays open.
    let mut events = Events::open(&app, &path, &app.admin, None).await;
    let first = events.next().await.unwrap();
    assert_eq!((first.event.as_str(), first.data["overall_status"].as_str()), ("progress", Some("planned")));
    assert_eq!(first.data["counts"]["planned"], 40);
    assert_eq!(first.data["bulkjob_id"], id);
    assert_eq!(first.id, first.data["id"].as_str().unwrap());

    // Confirmed, it runs to the end; every event is a new state, and `end` is the last one.
    app.post(&format!("{JOBS}/{id}/confirm"), json!({})).await.ok();
    let mut seen = vec![first.id.clone()];
    let last = loop {
        let e = events.next().await.expect("the stream ends with an `end` event");
        assert!(!seen.contains(&e.id), "state {} sent twice", e.id);
        seen.push(e.id.clone());
        let c = &e.data["counts"];
        let sum: i64 = ["planned", "pending", "running", "succeeded", "failed", "skipped"]
            .iter()
            .map(|k| c[k].as_i64().unwrap())
            .sum();
        assert_eq!(sum, 40, "counts add up to the total: {}", e.data);
        if e.event == "end" {
            break e;
        }
        assert_eq!(e.event, "progress");
    };
    assert_eq!(last.data["overall_status"], "completed");
    assert_eq!((last.data["done"].as_i64(), last.data["percent"].as_f64()), (Some(40), Some(100.0)));
    assert_eq!(last.data["counts"]["succeeded"], 40);
    assert!(events.next().await.is_none(), "the stream closes after `end`");

    // A client reconnecting after the end is told the end again.
    let mut again = Events::open(&app, &path, &app.admin, Some(&last.id)).await;
    let e = again.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.id.as_str()), ("end", last.id.as_str()));
}

#[tokio::test]
async fn last_event_id_is_not_sent_again() {
    let (app, ids) = app_with_keys(5).await;
    let planned = app.post(JOBS, json!({"operation": "disablekey", "keys": ids, "dry_run": true})).await.ok();
    let id = planned["id"].as_str().unwrap();
    let path = format!("{JOBS}/{id}/events");
    let mut first = Events::open(&app, &path, &app.admin, None).await;
    let planned_state = first.next().await.unwrap().id;
    drop(first);

    // Reconnecting with the planned state's id: that state is not repeated, the next one comes.
    let mut resumed = Events::open(&app, &path, &app.admin, Some(&planned_state)).await;
    app.post(&format!("{JOBS}/{id}/confirm"), json!({})).await.ok();
    let e = resumed.next().await.unwrap();
    assert_ne!(e.id, planned_state);
    assert_ne!(e.data["overall_status"], "planned");
}

#[tokio::test]
async fn events_have_the_readers_of_the_job() {
    let (app, ids) = app_with_keys(2).await;
    let job = app.run_bulkjob(json!({"operation": "enablekey", "keys": ids})).await;
    let id = job["id"].as_str().unwrap();
    let path = format!("{JOBS}/{id}/events");

    let anonymous = app.call("GET", &path, None, None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let (_, user) = app.user("ev-user", Some("CCKM Users")).await;
    let other = app.call("GET", &path, Some(&user), None).await;
    assert!(matches!(other.status.as_u16(), 403 | 404), "another user's job: {}", other.body);
    let unknown =
        app.call("GET", &format!("{JOBS}/00000000-0000-0000-0000-000000000000/events"), Some(&app.admin), None).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // An AWS job is not an Azure job.
    let azure = app.call("GET", &format!("/api/v1/cckm/azure/bulkjobs/{id}/events"), Some(&app.admin), None).await;
    assert_eq!(azure.status, 404, "{}", azure.body);

    // The owner's stream of a finished job is just its end.
    let mut events = Events::open(&app, &path, &app.admin, None).await;
    let e = events.next().await.unwrap();
    assert_eq!((e.event.as_str(), e.data["overall_status"].as_str()), ("end", Some("completed")));
    assert!(events.next().await.is_none());
}
