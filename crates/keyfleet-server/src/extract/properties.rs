//! Properties of the request parsers, over inputs a client could send (proptest, fixed seeds): the strict JSON
//! body of every route that takes one and the query of every list route (with `skip`, `limit` and `sort`
//! through `paging::page`) never panic, and give either the typed value or a 400 in CCKM's error body whose
//! message starts with the field at fault (`body` for a body that is not JSON at all).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyfleet_api_types::audit::AuditListQuery;
use keyfleet_api_types::auth::{ChangePasswordRequest, TokenRequest};
use keyfleet_api_types::aws::{AwsConnectionRequest, AwsKeyQuery, CreateAwsSyncJob, KmsRequest, TemplateRequest};
use keyfleet_api_types::azure::{
    AddVaultsRequest, AzureConnectionRequest, AzureKeyQuery, CreateAzureBulkJob, CreateAzureSyncJob, KeyBackupRequest,
    RestoreBackupRequest, VaultQuery,
};
use keyfleet_api_types::bulkjob::{
    BulkJobListQuery, CreateAwsBulkJob, ItemListQuery, RetryFailedRequest, RevertRequest,
};
use keyfleet_api_types::common::{ListParams, UpdateAclsRequest};
use keyfleet_api_types::usermgmt::{CreateGroupRequest, CreateUserRequest, UpdateGroupRequest, UpdateUserRequest};
use keyfleet_service::paging::{MAX_LIMIT, MAX_SKIP, page};
use keyfleet_store::sort_fields;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Json, Query};
use crate::routes::jobs::{ReportQuery, SyncListQuery};

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));

/// The top-level fields of a wire type, from its OpenAPI schema.
fn fields<T: ToSchema>() -> Vec<String> {
    match T::schema() {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o)) => o.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A refusal: 400, CCKM's invalid-parameter code, and a message `<field>: ...`; the field.
fn refused_field(status: StatusCode, body: &[u8]) -> Result<String, TestCaseError> {
    prop_assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(body).map_err(|e| TestCaseError::fail(format!("error body: {e}")))?;
    prop_assert_eq!(&body["code"], 9, "{}", body);
    prop_assert_eq!(&body["codeDesc"], "NCERRInvalidParamValue", "{}", body);
    let message = body["message"].as_str().unwrap_or_default();
    let field = message.split_once(": ").map(|(f, _)| f.to_string()).unwrap_or_default();
    prop_assert!(!field.is_empty(), "no field named: {}", body);
    Ok(field)
}

/// The top-level name a field path starts with (`selector.tags` → `selector`, `keys[3]` → `keys`).
fn head(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// Parses `bytes` as `T`'s body: the typed value, or a refusal naming `body`, a field of `T` or a key the body
/// itself carried (an unknown one).
fn check_body<T: DeserializeOwned + ToSchema>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let req = Request::builder().method("POST").uri("/").body(Body::from(bytes.to_vec())).expect("request");
    let outcome = RUNTIME.block_on(async {
        match Json::<T>::from_request(req, &()).await {
            Ok(_) => None,
            Err(r) => {
                let status = r.status();
                Some((status, axum::body::to_bytes(r.into_body(), usize::MAX).await.expect("body")))
            }
        }
    });
    let Some((status, body)) = outcome else { return Ok(()) };
    let field = refused_field(status, &body)?;
    let sent: BTreeSet<String> = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let known = fields::<T>();
    let top = head(&field);
    // A key of a body cut short is still a key sent: as JSON writes it, in the text.
    let in_text = |key: &str| {
        serde_json::to_string(key).is_ok_and(|quoted| String::from_utf8_lossy(bytes).contains(quoted.as_str()))
    };
    prop_assert!(
        field == "body"
            || known.iter().any(|k| k == top)
            || sent.contains(top)
            || sent.contains(&field)
            || in_text(&field),
        "{} names {:?}, neither `body` nor a field ({:?}) nor a key sent",
        std::any::type_name::<T>(),
        field,
        known
    );
    Ok(())
}

/// Parses a query string as `T`; for the list queries also `skip`, `limit` and `sort` through `page`.
fn check_query<T: DeserializeOwned + ToSchema>(
    query: &str,
    paging: impl Fn(&T) -> Option<ListParams>,
) -> Result<(), TestCaseError> {
    let Ok(req) = Request::builder().uri(format!("/?{query}")).body(()) else { return Ok(()) };
    let (mut parts, ()) = req.into_parts();
    let parsed = RUNTIME.block_on(Query::<T>::from_request_parts(&mut parts, &()));
    let known = fields::<T>();
    let refusal = match parsed {
        Err(e) => e,
        Ok(Query(q)) => match paging(&q).map(|p| page(&p, sort_fields::NAMED)) {
            None => return Ok(()),
            Some(Ok(p)) => {
                prop_assert!(p.limit <= MAX_LIMIT && p.skip <= MAX_SKIP, "{:?}", p);
                prop_assert!(p.sort.len() <= sort_fields::NAMED.len(), "{:?}", p);
                return Ok(());
            }
            Some(Err(e)) => crate::error::ApiError(e),
        },
    };
    let r = refusal.into_response();
    let status = r.status();
    let body = RUNTIME.block_on(axum::body::to_bytes(r.into_body(), usize::MAX)).expect("body");
    let field = refused_field(status, &body)?;
    let sent: BTreeSet<String> = form_urlencoded::parse(query.as_bytes()).map(|(k, _)| k.into_owned()).collect();
    prop_assert!(
        field == "query" || known.contains(&field) || sent.contains(&field),
        "{} names {:?}, neither a parameter ({:?}) nor one sent",
        std::any::type_name::<T>(),
        field,
        known
    );
    Ok(())
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("disablekey".to_string()),
        Just("us-east-1".to_string()),
        Just("-createdAt".to_string()),
        Just("alias/x".to_string()),
        Just("2026-01-01T00:00:00Z".to_string()),
        any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(serde_json::from_str("18446744073709551616").expect("big")),
        Just(serde_json::from_str("1e400").unwrap_or(Value::Null)),
    ]
}

/// JSON whose object keys are mostly the type's own fields, at any depth, and sometimes anything.
fn json(keys: Vec<String>) -> impl Strategy<Value = Value> {
    let leaf =
        prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), number(), word().prop_map(Value::from)];
    let key = prop_oneof![4 => proptest::sample::select(keys), 1 => word()];
    leaf.prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: JSON text of [`json`], the same cut short, or raw bytes.
fn body(keys: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => json(keys.clone()).prop_map(|v| v.to_string().into_bytes()),
        1 => (json(keys), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let text = v.to_string().into_bytes();
            let cut = i.index(text.len() + 1);
            text[..cut].to_vec()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Every body type a route takes: its check, and (for the generator) the field names of them all.
macro_rules! bodies {
    ($($t:ty),* $(,)?) => {
        const BODY_CHECKS: &[fn(&[u8]) -> Result<(), TestCaseError>] = &[$(check_body::<$t>),*];

        fn body_keys() -> Vec<String> {
            let mut keys = [$(fields::<$t>()),*].concat();
            // Nested fields too (selector, delete_key_backups_param, acls, vaults), so deep paths are reached.
            keys.extend(
                ["ids", "tags", "all", "alias_prefix", "key_state", "permit", "actions", "user_id", "group"]
                    .map(String::from),
            );
            keys.sort();
            keys.dedup();
            keys
        }
    };
}

bodies![
    TokenRequest,
    ChangePasswordRequest,
    CreateUserRequest,
    UpdateUserRequest,
    CreateGroupRequest,
    UpdateGroupRequest,
    AwsConnectionRequest,
    AzureConnectionRequest,
    KmsRequest,
    TemplateRequest,
    UpdateAclsRequest,
    CreateAwsBulkJob,
    CreateAzureBulkJob,
    CreateAwsSyncJob,
    CreateAzureSyncJob,
    AddVaultsRequest,
    KeyBackupRequest,
    RestoreBackupRequest,
    RetryFailedRequest,
    RevertRequest,
];

/// A query string: pairs of the list parameters (and anything), encoded, sometimes with raw bytes mixed in.
fn query_string() -> impl Strategy<Value = String> {
    let names = proptest::sample::select(vec![
        "skip",
        "limit",
        "sort",
        "id",
        "kms",
        "region",
        "keystate",
        "enabled",
        "gone",
        "tags",
        "key_vault",
        "name",
        "status",
        "overall_status",
        "operation",
        "cloud",
        "since",
        "until",
        "user",
        "action",
        "resource",
        "format",
    ]);
    let value = prop_oneof![
        Just("9223372036854775808".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("1000".to_string()),
        Just("1001".to_string()),
        Just(vec!["createdAt"; 2000].join(",")),
        Just("name,-name".to_string()),
        word(),
    ];
    let pair = (prop_oneof![4 => names.prop_map(String::from), 1 => word()], value);
    let encoded = proptest::collection::vec(pair, 0..5).prop_map(|pairs| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(&k, &v);
        }
        s.finish()
    });
    prop_oneof![4 => encoded, 1 => "[ -~]{0,40}".prop_map(|s| s.replace(' ', "%20").replace('#', "%23"))]
}

fn list_params(skip: Option<u64>, limit: Option<u64>, sort: &Option<String>) -> Option<ListParams> {
    Some(ListParams { skip, limit, sort: sort.clone() })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, rng_seed: RngSeed::Fixed(7), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_json_body_is_its_type_or_a_400_naming_the_field(
        (which, bytes) in (0..BODY_CHECKS.len(), body(body_keys()))
    ) {
        BODY_CHECKS[which](&bytes)?;
    }

    #[test]
    fn a_query_is_its_type_or_a_400_naming_the_parameter((which, q) in (0usize..9, query_string())) {
        match which {
            0 => check_query::<ListParams>(&q, |p| Some(p.clone()))?,
            1 => check_query::<AuditListQuery>(&q, |p| list_params(p.skip, p.limit, &p.sort))?,
            2 => check_query::<AwsKeyQuery>(&q, |p| list_params(p.skip, p.limit, &p.sort))?,
            3 => check_query::<AzureKeyQuery>(&q, |p| list_params(p.skip, p.limit, &p.sort))?,
            4 => check_query::<VaultQuery>(&q, |p| list_params(p.skip, p.limit, &p.sort))?,
            5 => check_query::<BulkJobListQuery>(&q, |p| list_params(p.skip, p.limit, &p.sort))?,
            6 => check_query::<ItemListQuery>(&q, |p| list_params(p.skip, p.limit, &None))?,
            7 => check_query::<SyncListQuery>(&q, |p| list_params(p.skip, p.limit, &p.sort))?,
            _ => check_query::<ReportQuery>(&q, |_| None)?,
        }
    }
}

/// The two faults the properties found, kept as examples: a body that is not an object was named `[0]`, and a
/// parameter with no name was named `` (an empty field).
#[test]
fn a_body_that_is_not_an_object_and_a_nameless_parameter_name_the_whole() {
    let req = Request::builder().method("POST").uri("/").body(Body::from("[1]")).expect("request");
    let r = RUNTIME.block_on(Json::<CreateGroupRequest>::from_request(req, &())).err().expect("refused");
    let body = RUNTIME.block_on(axum::body::to_bytes(r.into_body(), usize::MAX)).expect("body");
    let message = serde_json::from_slice::<Value>(&body).expect("JSON")["message"].as_str().map(String::from);
    assert!(message.as_deref().is_some_and(|m| m.starts_with("body: ")), "{message:?}");

    let (mut parts, ()) = Request::builder().uri("/?=1").body(()).expect("request").into_parts();
    let e = RUNTIME.block_on(Query::<ListParams>::from_request_parts(&mut parts, &())).err().expect("refused");
    assert!(e.0.to_string().starts_with("query: "), "{}", e.0);
}
