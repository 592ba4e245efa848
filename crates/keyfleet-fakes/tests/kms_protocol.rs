//! The fake's AWS KMS surface: JSON 1.1 framing, errors, and AWS's key state rules.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use keyfleet_fakes::FakeKmsConfig;
use serde_json::{Value, json};
use support::{ACCOUNT, Kms, REGION, authorization, key_arn};

// ---- framing ----

#[tokio::test]
async fn success_is_json_1_1_with_a_request_id() {
    let kms = Kms::new();
    let answer = kms.call("ListKeys", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/x-amz-json-1.1"));
    let request_id = answer.header("x-amzn-requestid").unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    assert_eq!(answer.body, json!({ "Keys": [], "Truncated": false }));
}

#[tokio::test]
async fn errors_carry_code_in_type_header_and_body() {
    let kms = Kms::new();
    let missing = "0a1b2c3d-0000-4000-8000-000000000000";
    let answer = kms.call("DescribeKey", json!({ "KeyId": missing })).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(answer.header("x-amzn-requestid").is_some());
    assert_eq!(answer.error_code().as_deref(), Some("NotFoundException"));
    assert_eq!(answer.message(), format!("Key '{}' does not exist", key_arn(REGION, ACCOUNT, missing)));
    let (code, message) = kms.err("DescribeKey", json!({ "KeyId": "nope" })).await;
    assert_eq!((code.as_str(), message.as_str()), ("NotFoundException", "Invalid keyId nope"));
}

#[tokio::test]
async fn unknown_or_missing_operation() {
    let kms = Kms::new();
    let (code, _) = kms.err("EncryptEverything", json!({})).await;
    assert_eq!(code, "UnknownOperationException");

    let request = Request::post("/")
        .header("authorization", authorization("AKIAFAKEKMS000000001", REGION))
        .body(Body::from("{}"))
        .unwrap();
    let answer = kms.send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_code().as_deref(), Some("UnknownOperationException"));

    let request = Request::post("/")
        .header("x-amz-target", "OtherService.ListKeys")
        .header("authorization", authorization("AKIAFAKEKMS000000001", REGION))
        .body(Body::from("{}"))
        .unwrap();
    let answer = kms.send(request).await;
    assert_eq!(answer.error_code().as_deref(), Some("UnknownOperationException"));
}

#[tokio::test]
async fn body_must_be_json_of_the_right_types() {
    let kms = Kms::new();
    let answer = kms.call_raw("ListKeys", "{not json").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_code().as_deref(), Some("SerializationException"));
    let (code, _) = kms.err("ListKeys", json!({ "Limit": "ten" })).await;
    assert_eq!(code, "SerializationException");
    let (code, _) = kms.err("ListKeys", json!([])).await;
    assert_eq!(code, "SerializationException");
    // An empty body is an empty input, which is fine for ListKeys.
    let answer = kms.call_raw("ListKeys", "").await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn authorization_is_required() {
    let kms = Kms::new();
    let request = Request::post("/")
        .header("x-amz-target", "TrentService.ListKeys")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from("{}"))
        .unwrap();
    let answer = kms.send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_code().as_deref(), Some("MissingAuthenticationTokenException"));

    let request = Request::post("/")
        .header("x-amz-target", "TrentService.ListKeys")
        .header("authorization", "Bearer abc")
        .body(Body::from("{}"))
        .unwrap();
    let answer = kms.send(request).await;
    assert_eq!(answer.error_code().as_deref(), Some("IncompleteSignatureException"));

    let calls = kms.fake.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.account.is_empty() && c.operation == "ListKeys" && c.error.is_some()));
}

#[tokio::test]
async fn missing_required_members_are_validation_errors() {
    let kms = Kms::new();
    for operation in [
        "DescribeKey",
        "EnableKey",
        "DisableKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "GetKeyPolicy",
        "ListResourceTags",
    ] {
        let (code, message) = kms.err(operation, json!({})).await;
        assert_eq!(code, "ValidationException", "{operation}");
        assert_eq!(
            message,
            "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: \
             Member must not be null",
            "{operation}"
        );
    }
    let (code, message) = kms.err("PutKeyPolicy", json!({})).await;
    assert_eq!(code, "ValidationException");
    assert!(message.starts_with("2 validation errors detected: "), "{message}");
    let (code, _) = kms.err("DescribeKey", json!({ "KeyId": "" })).await;
    assert_eq!(code, "ValidationException");
}

// ---- CreateKey / DescribeKey ----

#[tokio::test]
async fn create_key_defaults_match_aws() {
    let kms = Kms::new();
    let before = Utc::now().timestamp() as f64;
    let out = kms.ok("CreateKey", json!({})).await;
    let md = &out["KeyMetadata"];
    let key_id = md["KeyId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(key_id).is_ok());
    assert_eq!(md["AWSAccountId"], ACCOUNT);
    assert_eq!(md["Arn"], key_arn(REGION, ACCOUNT, key_id));
    assert_eq!(md["Enabled"], true);
    assert_eq!(md["KeyState"], "Enabled");
    assert_eq!(md["Description"], "");
    assert_eq!(md["KeyUsage"], "ENCRYPT_DECRYPT");
    assert_eq!(md["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(md["CustomerMasterKeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(md["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
    assert_eq!(md["Origin"], "AWS_KMS");
    assert_eq!(md["KeyManager"], "CUSTOMER");
    assert_eq!(md["MultiRegion"], false);
    assert!(md.get("DeletionDate").is_none());
    assert!(md.get("SigningAlgorithms").is_none());
    let created = md["CreationDate"].as_f64().unwrap();
    assert!(created >= before && created <= before + 60.0, "{created}");

    let out = kms.ok("GetKeyPolicy", json!({ "KeyId": key_id, "PolicyName": "default" })).await;
    assert_eq!(out["PolicyName"], "default");
    let policy: Value = serde_json::from_str(out["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy["Statement"][0]["Sid"], "Enable IAM User Permissions");
    assert_eq!(policy["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::111122223333:root");
    assert_eq!(policy["Statement"][0]["Action"], "kms:*");
}

#[tokio::test]
async fn create_key_takes_description_policy_tags_and_specs() {
    let kms = Kms::new();
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let out = kms
        .ok(
            "CreateKey",
            json!({
                "Description": "payments",
                "Policy": policy,
                "Tags": [{ "TagKey": "team", "TagValue": "pay" }],
            }),
        )
        .await;
    let key_id = out["KeyMetadata"]["KeyId"].as_str().unwrap();
    assert_eq!(out["KeyMetadata"]["Description"], "payments");
    assert_eq!(kms.fake.key_policy(ACCOUNT, REGION, key_id).as_deref(), Some(policy));
    assert_eq!(kms.fake.key_tags(ACCOUNT, REGION, key_id), Some(vec![("team".to_owned(), "pay".to_owned())]));

    let out = kms.ok("CreateKey", json!({ "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY" })).await;
    assert_eq!(out["KeyMetadata"]["SigningAlgorithms"], json!(["ECDSA_SHA_256"]));
    assert!(out["KeyMetadata"].get("EncryptionAlgorithms").is_none());

    let out = kms.ok("CreateKey", json!({ "KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC" })).await;
    assert_eq!(out["KeyMetadata"]["MacAlgorithms"], json!(["HMAC_SHA_256"]));
}

#[tokio::test]
async fn create_key_rejects_what_aws_rejects() {
    let kms = Kms::new();
    let cases = [
        (json!({ "Policy": "not json" }), "MalformedPolicyDocumentException"),
        (json!({ "Policy": "[1,2]" }), "MalformedPolicyDocumentException"),
        (json!({ "KeyUsage": "EVERYTHING" }), "ValidationException"),
        (json!({ "KeySpec": "AES_256" }), "ValidationException"),
        (json!({ "KeySpec": "HMAC_256" }), "ValidationException"),
        (
            json!({ "KeySpec": "RSA_2048", "CustomerMasterKeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY" }),
            "ValidationException",
        ),
        (json!({ "Description": "x".repeat(8193) }), "ValidationException"),
        (json!({ "Tags": [{ "TagKey": "aws:owner", "TagValue": "x" }] }), "TagException"),
        (json!({ "Tags": [{ "TagKey": "k" }] }), "ValidationException"),
        (json!({ "Origin": "EXTERNAL" }), "UnsupportedOperationException"),
        (json!({ "MultiRegion": true }), "UnsupportedOperationException"),
    ];
    for (input, expected) in cases {
        let (code, message) = kms.err("CreateKey", input.clone()).await;
        assert_eq!(code, expected, "{input}: {message}");
    }
    let (_, message) = kms.err("CreateKey", json!({ "KeyUsage": "EVERYTHING" })).await;
    assert!(
        message.contains(
            "Value 'EVERYTHING' at 'keyUsage' failed to satisfy constraint: Member must satisfy \
             enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT"
        ),
        "{message}"
    );
    assert_eq!(kms.ok("ListKeys", json!({})).await["Keys"], json!([]), "no key was created");
}

#[tokio::test]
async fn key_ids_resolve_from_id_arn_and_alias() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    kms.ok("CreateAlias", json!({ "AliasName": "alias/app", "TargetKeyId": key_id })).await;
    let arn = key_arn(REGION, ACCOUNT, &key_id);
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/app");
    for key_ref in [key_id.as_str(), &arn, "alias/app", &alias_arn] {
        assert_eq!(kms.describe(key_ref).await["KeyId"], key_id.as_str());
    }
    // Where AWS takes only a key id or key ARN.
    kms.ok("DisableKey", json!({ "KeyId": arn })).await;
    let (code, _) = kms.err("EnableKey", json!({ "KeyId": "alias/app" })).await;
    assert_eq!(code, "NotFoundException");

    let (code, message) = kms.err("DescribeKey", json!({ "KeyId": "alias/missing" })).await;
    assert_eq!(code, "NotFoundException");
    assert_eq!(message, format!("Alias arn:aws:kms:{REGION}:{ACCOUNT}:alias/missing is not found."));
    for foreign in [key_arn(REGION, "999999999999", &key_id), key_arn("eu-west-1", ACCOUNT, &key_id)] {
        let (code, message) = kms.err("DescribeKey", json!({ "KeyId": foreign })).await;
        assert_eq!(code, "NotFoundException");
        assert_eq!(message, format!("Key '{foreign}' does not exist"));
    }
    let (code, _) = kms.err("DescribeKey", json!({ "KeyId": "arn:aws:kms:us-east-1:111122223333:bucket/x" })).await;
    assert_eq!(code, "InvalidArnException");
}

// ---- Enable / Disable / deletion ----

#[tokio::test]
async fn enable_and_disable_are_idempotent_with_empty_answers() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    for (operation, state, enabled) in [
        ("DisableKey", "Disabled", false),
        ("DisableKey", "Disabled", false),
        ("EnableKey", "Enabled", true),
        ("EnableKey", "Enabled", true),
    ] {
        let answer = kms.call(operation, json!({ "KeyId": key_id })).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.raw.is_empty(), "{operation} answers an empty body");
        let md = kms.describe(&key_id).await;
        assert_eq!(md["KeyState"], state);
        assert_eq!(md["Enabled"], enabled);
    }
}

#[tokio::test]
async fn pending_window_must_be_7_to_30_days() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    for (days, constraint) in [
        (40, "Member must have value less than or equal to 30"),
        (31, "Member must have value less than or equal to 30"),
        (6, "Member must have value greater than or equal to 7"),
        (0, "Member must have value greater than or equal to 7"),
    ] {
        let (code, message) =
            kms.err("ScheduleKeyDeletion", json!({ "KeyId": key_id, "PendingWindowInDays": days })).await;
        assert_eq!(code, "ValidationException");
        assert_eq!(
            message,
            format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to \
                 satisfy constraint: {constraint}"
            )
        );
        assert_eq!(
            kms.fake.key_state(ACCOUNT, REGION, &key_id).as_deref(),
            Some("Enabled"),
            "a rejected call changes nothing"
        );
    }
    for days in [7, 30] {
        let key_id = kms.create_key().await;
        let out = kms.ok("ScheduleKeyDeletion", json!({ "KeyId": key_id, "PendingWindowInDays": days })).await;
        assert_eq!(out["PendingWindowInDays"], days);
    }
}

#[tokio::test]
async fn schedule_key_deletion_answer_and_state() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    let now = Utc::now().timestamp() as f64;
    let out = kms.ok("ScheduleKeyDeletion", json!({ "KeyId": key_id })).await;
    assert_eq!(out["KeyId"], key_arn(REGION, ACCOUNT, &key_id));
    assert_eq!(out["KeyState"], "PendingDeletion");
    assert_eq!(out["PendingWindowInDays"], 30, "the default window");
    let deletion = out["DeletionDate"].as_f64().unwrap();
    let thirty_days = 30.0 * 86_400.0;
    assert!((deletion - now - thirty_days).abs() < 60.0, "{deletion}");

    let md = kms.describe(&key_id).await;
    assert_eq!(md["KeyState"], "PendingDeletion");
    assert_eq!(md["Enabled"], false);
    assert_eq!(md["DeletionDate"].as_f64(), Some(deletion));

    let (code, message) = kms.err("ScheduleKeyDeletion", json!({ "KeyId": key_id })).await;
    assert_eq!(code, "KMSInvalidStateException");
    assert_eq!(message, format!("{} is pending deletion.", key_arn(REGION, ACCOUNT, &key_id)));
}

#[tokio::test]
async fn a_key_pending_deletion_cannot_be_changed() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    kms.ok("TagResource", json!({ "KeyId": key_id, "Tags": [{ "TagKey": "a", "TagValue": "1" }] })).await;
    kms.ok("ScheduleKeyDeletion", json!({ "KeyId": key_id, "PendingWindowInDays": 7 })).await;
    let pending = format!("{} is pending deletion.", key_arn(REGION, ACCOUNT, &key_id));
    for (operation, input) in [
        ("EnableKey", json!({ "KeyId": key_id })),
        ("DisableKey", json!({ "KeyId": key_id })),
        ("PutKeyPolicy", json!({ "KeyId": key_id, "Policy": "{}", "PolicyName": "default" })),
        ("TagResource", json!({ "KeyId": key_id, "Tags": [{ "TagKey": "b", "TagValue": "2" }] })),
        ("UntagResource", json!({ "KeyId": key_id, "TagKeys": ["a"] })),
        ("CreateAlias", json!({ "AliasName": "alias/late", "TargetKeyId": key_id })),
    ] {
        let (code, message) = kms.err(operation, input).await;
        assert_eq!(code, "KMSInvalidStateException", "{operation}");
        assert_eq!(message, pending, "{operation}");
    }
    // Reads still work.
    assert_eq!(kms.describe(&key_id).await["KeyState"], "PendingDeletion");
    kms.ok("GetKeyPolicy", json!({ "KeyId": key_id })).await;
    let tags = kms.ok("ListResourceTags", json!({ "KeyId": key_id })).await;
    assert_eq!(tags["Tags"], json!([{ "TagKey": "a", "TagValue": "1" }]));
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &key_id).as_deref(), Some("PendingDeletion"));
}

#[tokio::test]
async fn cancel_key_deletion_only_from_pending_and_leaves_key_disabled() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    let arn = key_arn(REGION, ACCOUNT, &key_id);
    let (code, message) = kms.err("CancelKeyDeletion", json!({ "KeyId": key_id })).await;
    assert_eq!(code, "KMSInvalidStateException");
    assert_eq!(message, format!("{arn} is not pending deletion."));
    kms.ok("DisableKey", json!({ "KeyId": key_id })).await;
    let (code, _) = kms.err("CancelKeyDeletion", json!({ "KeyId": key_id })).await;
    assert_eq!(code, "KMSInvalidStateException");

    kms.ok("EnableKey", json!({ "KeyId": key_id })).await;
    kms.ok("ScheduleKeyDeletion", json!({ "KeyId": key_id })).await;
    let out = kms.ok("CancelKeyDeletion", json!({ "KeyId": key_id })).await;
    assert_eq!(out, json!({ "KeyId": arn }));
    let md = kms.describe(&key_id).await;
    assert_eq!(md["KeyState"], "Disabled");
    assert_eq!(md["Enabled"], false);
    assert!(md.get("DeletionDate").is_none());
    kms.ok("EnableKey", json!({ "KeyId": key_id })).await;
    assert_eq!(kms.describe(&key_id).await["KeyState"], "Enabled");
}

// ---- policies ----

#[tokio::test]
async fn put_key_policy_rules() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    for bad in ["not json", "{\"Version\":", "[]", "\"a string\"", "42"] {
        let (code, _) = kms.err("PutKeyPolicy", json!({ "KeyId": key_id, "Policy": bad })).await;
        assert_eq!(code, "MalformedPolicyDocumentException", "{bad}");
    }
    let huge = format!("{{\"Sid\":\"{}\"}}", "x".repeat(40_000));
    let (code, _) = kms.err("PutKeyPolicy", json!({ "KeyId": key_id, "Policy": huge })).await;
    assert_eq!(code, "LimitExceededException");
    let (code, _) = kms.err("PutKeyPolicy", json!({ "KeyId": key_id, "Policy": "" })).await;
    assert_eq!(code, "ValidationException");
    let (code, message) =
        kms.err("PutKeyPolicy", json!({ "KeyId": key_id, "Policy": "{}", "PolicyName": "other" })).await;
    assert_eq!((code.as_str(), message.as_str()), ("NotFoundException", "No such policy exists"));
    let (code, _) = kms.err("GetKeyPolicy", json!({ "KeyId": key_id, "PolicyName": "other" })).await;
    assert_eq!(code, "NotFoundException");

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}"#;
    let answer = kms.call("PutKeyPolicy", json!({ "KeyId": key_id, "Policy": policy, "PolicyName": "default" })).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.raw.is_empty());
    let out = kms.ok("GetKeyPolicy", json!({ "KeyId": key_id })).await;
    assert_eq!(out, json!({ "Policy": policy, "PolicyName": "default" }));
}

// ---- tags ----

#[tokio::test]
async fn tags_overwrite_list_page_and_untag() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    let tag = |k: &str, v: &str| json!({ "TagKey": k, "TagValue": v });
    let answer =
        kms.call("TagResource", json!({ "KeyId": key_id, "Tags": [tag("env", "dev"), tag("team", "a")] })).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.raw.is_empty());
    kms.ok("TagResource", json!({ "KeyId": key_id, "Tags": [tag("env", "prod"), tag("empty", "")] })).await;
    let out = kms.ok("ListResourceTags", json!({ "KeyId": key_id })).await;
    assert_eq!(
        out,
        json!({
            "Tags": [tag("empty", ""), tag("env", "prod"), tag("team", "a")],
            "Truncated": false,
        })
    );

    let page = kms.ok("ListResourceTags", json!({ "KeyId": key_id, "Limit": 2 })).await;
    assert_eq!(page["Truncated"], true);
    assert_eq!(page["Tags"].as_array().unwrap().len(), 2);
    let rest = kms.ok("ListResourceTags", json!({ "KeyId": key_id, "Limit": 2, "Marker": page["NextMarker"] })).await;
    assert_eq!(rest, json!({ "Tags": [tag("team", "a")], "Truncated": false }));
    let (code, _) = kms.err("ListResourceTags", json!({ "KeyId": key_id, "Limit": 51 })).await;
    assert_eq!(code, "ValidationException");

    kms.ok("UntagResource", json!({ "KeyId": key_id, "TagKeys": ["env", "absent"] })).await;
    assert_eq!(
        kms.fake.key_tags(ACCOUNT, REGION, &key_id),
        Some(vec![("empty".to_owned(), String::new()), ("team".to_owned(), "a".to_owned())])
    );

    let (code, _) = kms.err("TagResource", json!({ "KeyId": key_id, "Tags": [tag("aws:x", "1")] })).await;
    assert_eq!(code, "TagException");
    let (code, _) = kms.err("TagResource", json!({ "KeyId": key_id })).await;
    assert_eq!(code, "ValidationException");
    let many: Vec<Value> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    let (code, _) = kms.err("TagResource", json!({ "KeyId": key_id, "Tags": many })).await;
    assert_eq!(code, "LimitExceededException", "2 existing + 50 new > 50");
}

// ---- aliases ----

#[tokio::test]
async fn alias_rules() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    let other = kms.create_key().await;
    let answer = kms.call("CreateAlias", json!({ "AliasName": "alias/app", "TargetKeyId": key_id })).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.raw.is_empty());

    let cases = [
        (json!({ "AliasName": "alias/app", "TargetKeyId": other }), "AlreadyExistsException"),
        (json!({ "AliasName": "app", "TargetKeyId": other }), "ValidationException"),
        (json!({ "AliasName": "alias/aws/s3", "TargetKeyId": other }), "NotAuthorizedException"),
        (json!({ "AliasName": "alias/bad name", "TargetKeyId": other }), "ValidationException"),
        (json!({ "AliasName": "alias/x", "TargetKeyId": "alias/app" }), "ValidationException"),
        (json!({ "AliasName": "alias/x", "TargetKeyId": "0a1b2c3d-0000-4000-8000-000000000000" }), "NotFoundException"),
        (json!({ "AliasName": "alias/x" }), "ValidationException"),
    ];
    for (input, expected) in cases {
        let (code, message) = kms.err("CreateAlias", input.clone()).await;
        assert_eq!(code, expected, "{input}: {message}");
    }
    let (_, message) = kms.err("CreateAlias", json!({ "AliasName": "alias/app", "TargetKeyId": other })).await;
    assert_eq!(message, "An alias with the name arn:aws:kms:us-east-1:111122223333:alias/app already exists");

    kms.ok("CreateAlias", json!({ "AliasName": "alias/other", "TargetKeyId": key_arn(REGION, ACCOUNT, &other) })).await;
    let all = kms.ok("ListAliases", json!({})).await;
    assert_eq!(all["Truncated"], false);
    let aliases = all["Aliases"].as_array().unwrap();
    assert_eq!(aliases.len(), 2);
    assert_eq!(aliases[0]["AliasName"], "alias/app");
    assert_eq!(aliases[0]["AliasArn"], "arn:aws:kms:us-east-1:111122223333:alias/app");
    assert_eq!(aliases[0]["TargetKeyId"], key_id.as_str());
    assert!(aliases[0]["CreationDate"].as_f64().is_some());
    assert!(aliases[0]["LastUpdatedDate"].as_f64().is_some());

    let filtered = kms.ok("ListAliases", json!({ "KeyId": other })).await;
    let names: Vec<&str> =
        filtered["Aliases"].as_array().unwrap().iter().map(|a| a["AliasName"].as_str().unwrap()).collect();
    assert_eq!(names, ["alias/other"]);
    let (code, _) = kms.err("ListAliases", json!({ "KeyId": "0a1b2c3d-0000-4000-8000-000000000000" })).await;
    assert_eq!(code, "NotFoundException");
    let (code, _) = kms.err("ListAliases", json!({ "Limit": 101 })).await;
    assert_eq!(code, "ValidationException");

    let page = kms.ok("ListAliases", json!({ "Limit": 1 })).await;
    assert_eq!(page["Truncated"], true);
    let rest = kms.ok("ListAliases", json!({ "Limit": 1, "Marker": page["NextMarker"] })).await;
    assert_eq!(rest["Aliases"][0]["AliasName"], "alias/other");
    assert_eq!(rest["Truncated"], false);

    kms.ok("DeleteAlias", json!({ "AliasName": "alias/app" })).await;
    let (code, _) = kms.err("DeleteAlias", json!({ "AliasName": "alias/app" })).await;
    assert_eq!(code, "NotFoundException");
    let (code, _) = kms.err("DescribeKey", json!({ "KeyId": "alias/app" })).await;
    assert_eq!(code, "NotFoundException");
}

// ---- ListKeys paging ----

#[tokio::test]
async fn list_keys_pages_with_limit_and_marker() {
    let kms = Kms::new();
    let created = kms.fake.create_keys(ACCOUNT, REGION, 250);

    let first = kms.ok("ListKeys", json!({})).await;
    assert_eq!(first["Keys"].as_array().unwrap().len(), 100, "default Limit");
    assert_eq!(first["Truncated"], true);

    let mut seen = Vec::new();
    let mut marker: Option<Value> = None;
    let mut pages = 0;
    loop {
        let mut input = json!({ "Limit": 100 });
        if let Some(marker) = &marker {
            input["Marker"] = marker.clone();
        }
        let page = kms.ok("ListKeys", input).await;
        pages += 1;
        for key in page["Keys"].as_array().unwrap() {
            let key_id = key["KeyId"].as_str().unwrap().to_owned();
            assert_eq!(key["KeyArn"], key_arn(REGION, ACCOUNT, &key_id));
            seen.push(key_id);
        }
        if page["Truncated"] == true {
            marker = Some(page["NextMarker"].clone());
        } else {
            assert!(page.get("NextMarker").is_none());
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every key once, in creation order");

    let big = kms.ok("ListKeys", json!({ "Limit": 1000 })).await;
    assert_eq!(big["Keys"].as_array().unwrap().len(), 250);
    assert_eq!(big["Truncated"], false);

    for limit in [0, 1001] {
        let (code, _) = kms.err("ListKeys", json!({ "Limit": limit })).await;
        assert_eq!(code, "ValidationException", "Limit {limit}");
    }
    let (code, _) = kms.err("ListKeys", json!({ "Marker": "made-up-marker" })).await;
    assert_eq!(code, "InvalidMarkerException");
    // A marker belongs to its listing: not valid in another region.
    let (code, _) = kms
        .as_caller("AKIAFAKEKMS000000001", "eu-west-1")
        .err("ListKeys", json!({ "Marker": first["NextMarker"] }))
        .await;
    assert_eq!(code, "InvalidMarkerException");
}

#[tokio::test]
async fn list_keys_includes_every_state_and_survives_deletions_between_pages() {
    let kms = Kms::new();
    let keys = kms.fake.create_keys(ACCOUNT, REGION, 5);
    kms.ok("DisableKey", json!({ "KeyId": keys[0] })).await;
    kms.ok("ScheduleKeyDeletion", json!({ "KeyId": keys[1] })).await;
    let page = kms.ok("ListKeys", json!({ "Limit": 2 })).await;
    assert!(kms.fake.delete_key_now(ACCOUNT, REGION, &keys[2]));
    let rest = kms.ok("ListKeys", json!({ "Marker": page["NextMarker"] })).await;
    let ids: Vec<&str> = page["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["Keys"].as_array().unwrap())
        .map(|k| k["KeyId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&keys[0], &keys[1], &keys[3], &keys[4]]);
}

// ---- accounts and regions ----

#[tokio::test]
async fn access_keys_map_to_separate_accounts() {
    let kms = Kms::with_config(FakeKmsConfig::default().with_account("AKIASECOND", "444455556666"));
    let first = kms.create_key().await;
    let second = kms.as_caller("AKIASECOND", REGION);
    let stranger = kms.as_caller("AKIASTRANGER", REGION);

    let md = second.ok("CreateKey", json!({})).await["KeyMetadata"].clone();
    assert_eq!(md["AWSAccountId"], "444455556666");
    let derived = kms.fake.account_for_access_key("AKIASTRANGER");
    assert_eq!(derived.len(), 12);
    assert_ne!(derived, ACCOUNT);
    assert_eq!(derived, kms.fake.account_for_access_key("AKIASTRANGER"));
    let md = stranger.ok("CreateKey", json!({})).await["KeyMetadata"].clone();
    assert_eq!(md["AWSAccountId"], derived.as_str());

    for caller in [&second, &stranger] {
        let keys = caller.ok("ListKeys", json!({})).await["Keys"].clone();
        assert_eq!(keys.as_array().unwrap().len(), 1);
        assert_ne!(keys[0]["KeyId"], first.as_str());
        let (code, _) = caller.err("DescribeKey", json!({ "KeyId": first })).await;
        assert_eq!(code, "NotFoundException");
        let (code, _) = caller.err("DisableKey", json!({ "KeyId": first })).await;
        assert_eq!(code, "NotFoundException");
    }
    assert_eq!(kms.ok("ListKeys", json!({})).await["Keys"].as_array().unwrap().len(), 1);
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &first).as_deref(), Some("Enabled"));
}

#[tokio::test]
async fn regions_are_separate_stores() {
    let kms = Kms::new();
    let east = kms.create_key().await;
    let west = kms.as_caller("AKIAFAKEKMS000000001", "eu-west-1");
    assert_eq!(west.ok("ListKeys", json!({})).await["Keys"], json!([]));
    let (code, _) = west.err("DescribeKey", json!({ "KeyId": east })).await;
    assert_eq!(code, "NotFoundException");
    let west_key = west.ok("CreateKey", json!({})).await["KeyMetadata"].clone();
    assert_eq!(west_key["Arn"], key_arn("eu-west-1", ACCOUNT, west_key["KeyId"].as_str().unwrap()));
    assert_eq!(kms.ok("ListKeys", json!({})).await["Keys"][0]["KeyId"], east.as_str());
    assert_eq!(kms.fake.key_state(ACCOUNT, "eu-west-1", &east), None);
}

// ---- call log ----

#[tokio::test]
async fn every_call_is_logged_with_its_key_and_error() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    kms.ok("CreateAlias", json!({ "AliasName": "alias/logged", "TargetKeyId": key_id })).await;
    kms.ok("DescribeKey", json!({ "KeyId": "alias/logged" })).await;
    kms.err("ScheduleKeyDeletion", json!({ "KeyId": key_id, "PendingWindowInDays": 40 })).await;
    kms.err("EncryptEverything", json!({})).await;
    kms.as_caller("AKIAOTHER", "ap-south-1").err("DescribeKey", json!({ "KeyId": key_id })).await;

    let calls = kms.fake.calls();
    let summary: Vec<(u64, &str, Option<&str>, Option<&str>)> =
        calls.iter().map(|c| (c.seq, c.operation.as_str(), c.key_id.as_deref(), c.error.as_deref())).collect();
    let k = Some(key_id.as_str());
    assert_eq!(
        summary,
        [
            (1, "CreateKey", k, None),
            (2, "CreateAlias", k, None),
            (3, "DescribeKey", k, None),
            (4, "ScheduleKeyDeletion", None, Some("ValidationException")),
            (5, "EncryptEverything", None, Some("UnknownOperationException")),
            (6, "DescribeKey", None, Some("NotFoundException")),
        ]
    );
    assert!(
        calls[..5]
            .iter()
            .all(|c| c.access_key_id == "AKIAFAKEKMS000000001" && c.account == ACCOUNT && c.region == REGION)
    );
    assert_eq!(calls[5].access_key_id, "AKIAOTHER");
    assert_eq!(calls[5].account, kms.fake.account_for_access_key("AKIAOTHER"));
    assert_eq!(calls[5].region, "ap-south-1");
    assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));
    let unique: HashSet<u64> = calls.iter().map(|c| c.seq).collect();
    assert_eq!(unique.len(), calls.len());
}
