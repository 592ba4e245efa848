//! Each of the five operations as a full job, against the strict fake and against moto; the keys must end in
//! the expected state in the backend itself, and the cached key must show it too.

use serde_json::json;

use crate::support::*;

struct Backend {
    endpoint: String,
    access_key: &'static str,
    account: &'static str,
    _moto: Option<Moto>,
}

const REGION: &str = "us-east-1";

async fn fake(app: &TestApp) -> Backend {
    Backend { endpoint: app.fake.url(), access_key: FAKE_ACCESS_KEY, account: FAKE_ACCOUNT, _moto: None }
}

async fn moto() -> Backend {
    let m = Moto::start().await;
    Backend { endpoint: m.url.clone(), access_key: "AKIAMOTOTEST00000001", account: MOTO_ACCOUNT, _moto: Some(m) }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Enable,
    Disable,
    Schedule,
    Cancel,
    ApplyPolicy,
}

/// Creates `n` keys in the backend, brings them into the state the operation starts from (one of them already
/// in the target state, to prove idempotence), runs the job through keyfleet and checks the backend.
async fn run(op: Op, backend: Backend, app: &TestApp) {
    let sdk = kms_client(&backend.endpoint, backend.access_key, REGION);
    let mut arns = Vec::new();
    for i in 0..4 {
        let k = sdk.create_key().description(format!("test key {i}")).send().await.unwrap();
        arns.push(k.key_metadata().unwrap().key_id().to_string());
    }
    match op {
        Op::Enable => {
            for a in &arns[1..] {
                sdk.disable_key().key_id(a).send().await.unwrap();
            }
        }
        Op::Disable => {
            sdk.disable_key().key_id(&arns[0]).send().await.unwrap();
        }
        Op::Schedule => {}
        Op::Cancel => {
            for a in &arns {
                sdk.schedule_key_deletion().key_id(a).pending_window_in_days(7).send().await.unwrap();
            }
        }
        Op::ApplyPolicy => {}
    }
    app.add_kms("acct", &backend.endpoint, backend.access_key, backend.account, &[REGION]).await;
    let sync = app.sync("acct").await;
    assert_eq!(sync["overall_status"], "completed", "{sync}");
    let ids = app.key_ids("acct").await;
    assert_eq!(ids.len(), 4);

    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "keyfleet-test", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", backend.account)}, "Action": "kms:*", "Resource": "*"}]});
    let body = match op {
        Op::Enable => json!({"operation": "enablekey", "keys": ids}),
        Op::Disable => json!({"operation": "disablekey", "keys": ids}),
        Op::Schedule => json!({"operation": "schedulekeydeletion", "keys": ids, "days": 7}),
        Op::Cancel => json!({"operation": "cancelkeydeletion", "keys": ids}),
        Op::ApplyPolicy => {
            let t = app
                .post(
                    "/api/v1/cckm/aws/templates",
                    json!({"name": "t1", "account_id": backend.account, "policy": policy}),
                )
                .await
                .ok();
            json!({"operation": "applypolicytemplate", "keys": ids, "policy_template_id": t["id"]})
        }
    };
    let job = app.run_bulkjob(body.clone()).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert!(job["completed_at"].is_string());
    for id in &ids {
        assert_eq!(job["detailed_status"][id], "Success", "{op:?}: {job}");
    }

    let expected = match op {
        Op::Enable => "Enabled",
        Op::Disable | Op::Cancel => "Disabled",
        Op::Schedule => "PendingDeletion",
        Op::ApplyPolicy => "Enabled",
    };
    for arn in &arns {
        let m = sdk.describe_key().key_id(arn).send().await.unwrap();
        assert_eq!(m.key_metadata().unwrap().key_state().unwrap().as_str(), expected, "{op:?} in the backend");
        if let Op::ApplyPolicy = op {
            let p = sdk.get_key_policy().key_id(arn).policy_name("default").send().await.unwrap();
            let got: serde_json::Value = serde_json::from_str(p.policy().unwrap()).unwrap();
            assert_eq!(got, policy);
            let tags = sdk.list_resource_tags().key_id(arn).send().await.unwrap();
            assert!(
                tags.tags()
                    .iter()
                    .any(|t| t.tag_key() == "cckm_policy_template_id" && t.tag_value() == body["policy_template_id"]),
                "template tag on {arn}"
            );
        }
    }
    // The cached key was refreshed after the effect.
    for id in &ids {
        let k = app.get(&format!("/api/v1/cckm/aws/keys/{id}")).await.ok();
        assert_eq!(k["aws_param"]["KeyState"], expected, "cached state of {id}");
    }
}

macro_rules! both_backends {
    ($($fake:ident, $moto:ident => $op:expr;)*) => {$(
        #[tokio::test]
        async fn $fake() {
            let app = TestApp::start().await;
            let b = fake(&app).await;
            run($op, b, &app).await;
        }

        #[tokio::test]
        async fn $moto() {
            let app = TestApp::start().await;
            let b = moto().await;
            run($op, b, &app).await;
        }
    )*};
}

both_backends! {
    enablekey_against_fake, enablekey_against_moto => Op::Enable;
    disablekey_against_fake, disablekey_against_moto => Op::Disable;
    schedulekeydeletion_against_fake, schedulekeydeletion_against_moto => Op::Schedule;
    cancelkeydeletion_against_fake, cancelkeydeletion_against_moto => Op::Cancel;
    applypolicytemplate_against_fake, applypolicytemplate_against_moto => Op::ApplyPolicy;
}
