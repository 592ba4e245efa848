//! The OpenAPI 3.1 document of the whole API (`GET /openapi.json`), built from the wire types' own schemas
//! (`utoipa::ToSchema` on `keyfleet-api-types`). One line of [`operations`] per (method, path) the router
//! mounts; the API suite checks the two agree (`routes::mounted_routes`).

use keyfleet_api_types::audit::{AuditListQuery, AuditRecordView};
use keyfleet_api_types::auth::{ChangePasswordRequest, RefreshTokenView, TokenRequest, TokenResponse};
use keyfleet_api_types::aws::{
    AwsConnectionRequest, AwsConnectionView, AwsKeyQuery, AwsKeyView, CreateAwsSyncJob, KmsRequest, KmsView,
    SyncJobView, TemplateRequest, TemplateView,
};
use keyfleet_api_types::azure::{
    AddVaultsRequest, AzureConnectionRequest, AzureConnectionView, AzureKeyQuery, AzureKeyView, AzureSyncJobView,
    CreateAzureBulkJob, CreateAzureSyncJob, KeyBackupRequest, KeyBackupView, RestoreBackupRequest, VaultQuery,
    VaultView,
};
use keyfleet_api_types::bulkjob::{
    BulkJobListQuery, BulkJobView, CreateAwsBulkJob, ItemListQuery, ItemView, RetryFailedRequest, RevertRequest,
};
use keyfleet_api_types::common::{ErrorBody, ListParams, UpdateAclsRequest};
use keyfleet_api_types::usermgmt::{
    CreateGroupRequest, CreateUserRequest, GroupView, UpdateGroupRequest, UpdateUserRequest, UserView,
};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder, Tag,
};

use crate::routes::jobs::{ReportQuery, SyncListQuery};
use crate::views::report::ErrorsView;

type Schemas = Vec<(String, RefOr<Schema>)>;

/// A schema as an operation refers to it, and how to put what it refers to into the components.
struct S {
    schema: RefOr<Schema>,
    register: fn(&mut Schemas),
}

/// Makes an [`S`] (`s::<T>` or `list::<T>`), picked per cloud.
type Make = fn() -> S;

fn register<T: ToSchema>(schemas: &mut Schemas) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// `T`, by reference to its component.
fn s<T: ToSchema>() -> S {
    S { schema: Ref::from_schema_name(T::name()).into(), register: register::<T> }
}

/// `{"skip", "limit", "total", "resources": [T]}`, the answer of every list route.
fn list<T: ToSchema>() -> S {
    let count = || ObjectBuilder::new().schema_type(Type::Integer).format(Some(int64())).minimum(Some(0));
    let envelope = ObjectBuilder::new()
        .property("skip", count())
        .property("limit", count())
        .property("total", count())
        .property("resources", ArrayBuilder::new().items(Ref::from_schema_name(T::name())))
        .required("skip")
        .required("limit")
        .required("total")
        .required("resources");
    S { schema: envelope.into(), register: register::<T> }
}

fn int64() -> utoipa::openapi::schema::SchemaFormat {
    utoipa::openapi::schema::SchemaFormat::KnownFormat(utoipa::openapi::schema::KnownFormat::Int64)
}

/// A query type's fields, one query parameter each (`null` dropped: a query parameter is absent or a value).
struct Q(fn() -> RefOr<Schema>);

fn q<T: ToSchema>() -> Q {
    Q(T::schema)
}

/// One operation: its summary, query, body and success answer (`None`: no body, as 204).
struct Op {
    summary: &'static str,
    query: Option<Q>,
    body: Option<(S, bool)>,
    status: u16,
    answer: Option<S>,
    media: &'static [&'static str],
    public: bool,
    /// Request headers it reads: (name, description).
    headers: Vec<(&'static str, &'static str)>,
}

fn op(summary: &'static str, status: u16, answer: Option<S>) -> Op {
    Op {
        summary,
        query: None,
        body: None,
        status,
        answer,
        media: &["application/json"],
        public: false,
        headers: Vec::new(),
    }
}

impl Op {
    fn query(mut self, q: Q) -> Self {
        self.query = Some(q);
        self
    }
    /// A JSON body; `required: false` where an empty body is the same as `{}` by design.
    fn body(mut self, s: S, required: bool) -> Self {
        self.body = Some((s, required));
        self
    }
    fn public(mut self) -> Self {
        self.public = true;
        self
    }
    /// Takes the `Idempotency-Key` header (the bulk-job creates).
    fn idempotent(self) -> Self {
        self.header_param("Idempotency-Key", "The job is created at most once per key; a retry answers the same job.")
    }
    /// Reads an optional request header.
    fn header_param(mut self, name: &'static str, description: &'static str) -> Self {
        self.headers.push((name, description));
        self
    }
}

use HttpMethod::{Delete, Get, Patch, Post};

/// Every operation of the API: (method, path as axum writes it, tag, operation).
fn operations() -> Vec<(HttpMethod, String, &'static str, Op)> {
    let mut ops: Vec<(HttpMethod, String, &'static str, Op)> = vec![
        (Get, "/healthz".into(), "health", op("Liveness", 200, Some(health())).public()),
        (Get, "/api/healthz".into(), "health", op("Liveness", 200, Some(health())).public()),
        (Get, "/readyz".into(), "health", readyz()),
        (Get, "/api/readyz".into(), "health", readyz()),
        (
            Get,
            "/metrics".into(),
            "health",
            Op {
                media: &["text/plain"],
                ..op("Prometheus metrics (Bearer metrics_token when one is set)", 200, Some(text()))
            }
            .public(),
        ),
        (Get, "/openapi.json".into(), "health", op("This document", 200, None).public()),
        // --- auth
        (
            Post,
            "/api/v1/auth/tokens".into(),
            "auth",
            op("Log in (password or refresh-token grant)", 200, Some(s::<TokenResponse>()))
                .body(s::<TokenRequest>(), true)
                .public(),
        ),
        (
            Post,
            "/api/v1/auth/tokens/".into(),
            "auth",
            op("Log in (trailing slash, as some CCKM clients send it)", 200, Some(s::<TokenResponse>()))
                .body(s::<TokenRequest>(), true)
                .public(),
        ),
        (
            Get,
            "/api/v1/auth/tokens".into(),
            "auth",
            op("The caller's refresh tokens", 200, Some(list::<RefreshTokenView>())).query(q::<ListParams>()),
        ),
        (Delete, "/api/v1/auth/tokens/{id}".into(), "auth", op("Revoke one of the caller's refresh tokens", 204, None)),
        (
            Patch,
            "/api/v1/auth/changepw".into(),
            "auth",
            op("Change one's own password (revokes every token)", 204, None)
                .body(s::<ChangePasswordRequest>(), true)
                .public(),
        ),
        // --- users and groups
        (
            Get,
            "/api/v1/usermgmt/users".into(),
            "usermgmt",
            op("List users", 200, Some(list::<UserView>())).query(q::<ListParams>()),
        ),
        (
            Post,
            "/api/v1/usermgmt/users".into(),
            "usermgmt",
            op("Create a user", 201, Some(s::<UserView>())).body(s::<CreateUserRequest>(), true),
        ),
        (Get, "/api/v1/usermgmt/users/{id}".into(), "usermgmt", op("Get a user", 200, Some(s::<UserView>()))),
        (
            Patch,
            "/api/v1/usermgmt/users/{id}".into(),
            "usermgmt",
            op("Update a user (password, disable)", 200, Some(s::<UserView>())).body(s::<UpdateUserRequest>(), true),
        ),
        (Delete, "/api/v1/usermgmt/users/{id}".into(), "usermgmt", op("Delete a user", 204, None)),
        (
            Get,
            "/api/v1/usermgmt/groups".into(),
            "usermgmt",
            op("List groups", 200, Some(list::<GroupView>())).query(q::<ListParams>()),
        ),
        (
            Post,
            "/api/v1/usermgmt/groups".into(),
            "usermgmt",
            op("Create a group", 201, Some(s::<GroupView>())).body(s::<CreateGroupRequest>(), true),
        ),
        (Get, "/api/v1/usermgmt/groups/{name}".into(), "usermgmt", op("Get a group", 200, Some(s::<GroupView>()))),
        (
            Patch,
            "/api/v1/usermgmt/groups/{name}".into(),
            "usermgmt",
            op("Update a group", 200, Some(s::<GroupView>())).body(s::<UpdateGroupRequest>(), true),
        ),
        (Delete, "/api/v1/usermgmt/groups/{name}".into(), "usermgmt", op("Delete a group", 204, None)),
        (
            Post,
            "/api/v1/usermgmt/groups/{name}/users/{user_id}".into(),
            "usermgmt",
            op("Add a user to a group", 200, Some(s::<GroupView>())),
        ),
        (
            Delete,
            "/api/v1/usermgmt/groups/{name}/users/{user_id}".into(),
            "usermgmt",
            op("Remove a user from a group", 204, None),
        ),
        // --- audit
        (
            Get,
            "/api/v1/audit/records".into(),
            "audit",
            op("Audit records (admins)", 200, Some(list::<AuditRecordView>())).query(q::<AuditListQuery>()),
        ),
        // --- AWS inventory
        (
            Get,
            "/api/v1/cckm/aws/kms".into(),
            "aws",
            op("List KMS containers", 200, Some(list::<KmsView>())).query(q::<ListParams>()),
        ),
        (
            Post,
            "/api/v1/cckm/aws/kms".into(),
            "aws",
            op("Add a KMS container", 201, Some(s::<KmsView>())).body(s::<KmsRequest>(), true),
        ),
        (Get, "/api/v1/cckm/aws/kms/{id}".into(), "aws", op("Get a KMS container", 200, Some(s::<KmsView>()))),
        (
            Patch,
            "/api/v1/cckm/aws/kms/{id}".into(),
            "aws",
            op("Update a KMS container", 200, Some(s::<KmsView>())).body(s::<KmsRequest>(), true),
        ),
        (Delete, "/api/v1/cckm/aws/kms/{id}".into(), "aws", op("Delete a KMS container", 204, None)),
        (
            Post,
            "/api/v1/cckm/aws/kms/{id}/update-acls".into(),
            "aws",
            op("Grant or revoke ACL actions", 200, Some(s::<KmsView>())).body(s::<UpdateAclsRequest>(), true),
        ),
        (
            Get,
            "/api/v1/cckm/aws/keys".into(),
            "aws",
            op("List AWS keys", 200, Some(list::<AwsKeyView>())).query(q::<AwsKeyQuery>()),
        ),
        (Get, "/api/v1/cckm/aws/keys/{id}".into(), "aws", op("Get an AWS key", 200, Some(s::<AwsKeyView>()))),
        (
            Get,
            "/api/v1/cckm/aws/templates".into(),
            "aws",
            op("List policy templates", 200, Some(list::<TemplateView>())).query(q::<ListParams>()),
        ),
        (
            Post,
            "/api/v1/cckm/aws/templates".into(),
            "aws",
            op("Create a policy template", 201, Some(s::<TemplateView>())).body(s::<TemplateRequest>(), true),
        ),
        (
            Get,
            "/api/v1/cckm/aws/templates/{id}".into(),
            "aws",
            op("Get a policy template", 200, Some(s::<TemplateView>())),
        ),
        (
            Patch,
            "/api/v1/cckm/aws/templates/{id}".into(),
            "aws",
            op("Update a policy template", 200, Some(s::<TemplateView>())).body(s::<TemplateRequest>(), true),
        ),
        (Delete, "/api/v1/cckm/aws/templates/{id}".into(), "aws", op("Delete a policy template", 204, None)),
        // --- Azure inventory
        (
            Post,
            "/api/v1/cckm/azure/add-vaults".into(),
            "azure",
            op("Add vaults", 201, Some(list::<VaultView>())).body(s::<AddVaultsRequest>(), true),
        ),
        (
            Get,
            "/api/v1/cckm/azure/vaults".into(),
            "azure",
            op("List vaults", 200, Some(list::<VaultView>())).query(q::<VaultQuery>()),
        ),
        (Get, "/api/v1/cckm/azure/vaults/{id}".into(), "azure", op("Get a vault", 200, Some(s::<VaultView>()))),
        (
            Post,
            "/api/v1/cckm/azure/vaults/{id}/update-acls".into(),
            "azure",
            op("Grant or revoke ACL actions", 200, Some(s::<VaultView>())).body(s::<UpdateAclsRequest>(), true),
        ),
        (
            Get,
            "/api/v1/cckm/azure/keys".into(),
            "azure",
            op("List Azure keys", 200, Some(list::<AzureKeyView>())).query(q::<AzureKeyQuery>()),
        ),
        (Get, "/api/v1/cckm/azure/keys/{id}".into(), "azure", op("Get an Azure key", 200, Some(s::<AzureKeyView>()))),
        (
            Get,
            "/api/v1/cckm/azure/keys/{id}/backups".into(),
            "azure",
            op("List a key's cloud key backups", 200, Some(list::<KeyBackupView>())).query(q::<ListParams>()),
        ),
        (
            Post,
            "/api/v1/cckm/azure/keys/{id}/backups".into(),
            "azure",
            op("Back up a key", 201, Some(s::<KeyBackupView>())).body(s::<KeyBackupRequest>(), true),
        ),
        (
            Get,
            "/api/v1/cckm/azure/keys/{id}/backups/{backup_id}".into(),
            "azure",
            op("Get a backup", 200, Some(s::<KeyBackupView>())),
        ),
        (
            Patch,
            "/api/v1/cckm/azure/keys/{id}/backups/{backup_id}".into(),
            "azure",
            op("Rename or describe a backup", 200, Some(s::<KeyBackupView>())).body(s::<KeyBackupRequest>(), true),
        ),
        (Delete, "/api/v1/cckm/azure/keys/{id}/backups/{backup_id}".into(), "azure", op("Delete a backup", 204, None)),
        (
            Post,
            "/api/v1/cckm/azure/keys/{id}/backups/{backup_id}/restore".into(),
            "azure",
            op("Restore a backup into a vault", 200, Some(s::<AzureKeyView>())).body(s::<RestoreBackupRequest>(), true),
        ),
        (Delete, "/api/v1/cckm/azure/bulkjobs/{id}".into(), "azure", op("Delete a finished bulk job", 204, None)),
    ];
    for (cloud, tag) in [("aws", "aws"), ("azure", "azure")] {
        ops.extend(connections(cloud, tag));
    }
    ops.extend(jobs("aws", "/api/v1/cckm/aws/bulkjob", "/api/v1/cckm/aws/synchronization-jobs"));
    ops.extend(jobs("azure", "/api/v1/cckm/azure/bulkjobs", "/api/v1/cckm/azure/synchronization-jobs"));
    ops
}

/// A cloud's connection routes (`connection_routes!`).
fn connections(cloud: &str, tag: &'static str) -> Vec<(HttpMethod, String, &'static str, Op)> {
    let base = format!("/api/v1/connectionmgmt/services/{cloud}/connections");
    let one = format!("{base}/{{id}}");
    let (request, view, views): (Make, Make, Make) = if cloud == "aws" {
        (s::<AwsConnectionRequest>, s::<AwsConnectionView>, list::<AwsConnectionView>)
    } else {
        (s::<AzureConnectionRequest>, s::<AzureConnectionView>, list::<AzureConnectionView>)
    };
    vec![
        (Get, base.clone(), tag, op("List connections", 200, Some(views())).query(q::<ListParams>())),
        (Post, base, tag, op("Create a connection", 201, Some(view())).body(request(), true)),
        (Get, one.clone(), tag, op("Get a connection", 200, Some(view()))),
        (Patch, one.clone(), tag, op("Update a connection", 200, Some(view())).body(request(), true)),
        (Delete, one, tag, op("Delete a connection", 204, None)),
    ]
}

/// A cloud's job routes (`routes::jobs::shared` and its two creates).
fn jobs(cloud: &'static str, bulk: &str, sync: &str) -> Vec<(HttpMethod, String, &'static str, Op)> {
    let one = format!("{bulk}/{{id}}");
    let (create, sync_view, sync_views, sync_create): (Make, Make, Make, Make) = if cloud == "aws" {
        (s::<CreateAwsBulkJob>, s::<SyncJobView>, list::<SyncJobView>, s::<CreateAwsSyncJob>)
    } else {
        (s::<CreateAzureBulkJob>, s::<AzureSyncJobView>, list::<AzureSyncJobView>, s::<CreateAzureSyncJob>)
    };
    let job = s::<BulkJobView>;
    let report = op("Per-item report (CSV or NDJSON)", 200, Some(text())).query(q::<ReportQuery>());
    let report = Op { media: &["text/csv", "application/x-ndjson"], ..report };
    let events = op("Progress as server-sent events (`progress`, then `end`)", 200, Some(text()))
        .header_param("Last-Event-ID", "The id of the last event received: that state is not sent again");
    let events = Op { media: &["text/event-stream"], ..events };
    vec![
        (
            Get,
            bulk.to_string(),
            cloud,
            op("List bulk jobs", 200, Some(list::<BulkJobView>())).query(q::<BulkJobListQuery>()),
        ),
        (Post, bulk.to_string(), cloud, op("Create a bulk job", 201, Some(job())).body(create(), true).idempotent()),
        (Get, one.clone(), cloud, op("Get a bulk job", 200, Some(job()))),
        (Post, format!("{one}/cancel"), cloud, op("Cancel a bulk job", 200, Some(job()))),
        (Post, format!("{one}/confirm"), cloud, op("Start a planned bulk job", 200, Some(job()))),
        (
            Get,
            format!("{one}/items"),
            cloud,
            op("A bulk job's items", 200, Some(list::<ItemView>())).query(q::<ItemListQuery>()),
        ),
        (Get, format!("{one}/report"), cloud, report),
        (Get, format!("{one}/errors"), cloud, op("A bulk job's failures by error code", 200, Some(s::<ErrorsView>()))),
        (Get, format!("{one}/events"), cloud, events),
        (
            Post,
            format!("{one}/retry-failed"),
            cloud,
            op("New job over the failed and skipped items", 201, Some(job())).body(s::<RetryFailedRequest>(), false),
        ),
        (
            Post,
            format!("{one}/revert"),
            cloud,
            op("Plan putting back what the job changed", 201, Some(job())).body(s::<RevertRequest>(), false),
        ),
        (
            Get,
            sync.to_string(),
            cloud,
            op("List key synchronization jobs", 200, Some(sync_views())).query(q::<SyncListQuery>()),
        ),
        (
            Post,
            sync.to_string(),
            cloud,
            op("Start a key synchronization job", 201, Some(sync_view())).body(sync_create(), true),
        ),
        (Get, format!("{sync}/{{id}}"), cloud, op("Get a key synchronization job", 200, Some(sync_view()))),
        (Post, format!("{sync}/{{id}}/cancel"), cloud, op("Cancel a key synchronization job", 200, Some(sync_view()))),
    ]
}

/// `/readyz`: 200 when ready; 503 `{"status": "not ready", "reason": ..., "checks": {...}}` (the error answer).
fn readyz() -> Op {
    op(
        "Readiness: database writable, migrations current, lease renewals on time; else 503 with the reason",
        200,
        Some(health()),
    )
    .public()
}

fn health() -> S {
    let schema =
        ObjectBuilder::new().property("status", ObjectBuilder::new().schema_type(Type::String)).required("status");
    S { schema: schema.into(), register: |_| {} }
}

fn text() -> S {
    S { schema: ObjectBuilder::new().schema_type(Type::String).into(), register: |_| {} }
}

/// A query type's fields as query parameters.
fn query_parameters(q: &Q) -> Vec<utoipa::openapi::path::Parameter> {
    let RefOr::T(Schema::Object(object)) = (q.0)() else { return Vec::new() };
    object
        .properties
        .into_iter()
        .map(|(name, schema)| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(without_null(schema)))
                .build()
        })
        .collect()
}

/// `Option<T>`'s schema without its `null`.
fn without_null(schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut o)) => {
            if let SchemaType::Array(types) = &o.schema_type {
                let kept: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                o.schema_type = match kept.as_slice() {
                    [one] => SchemaType::Type(one.clone()),
                    _ => SchemaType::Array(kept),
                };
            }
            RefOr::T(Schema::Object(o))
        }
        other => other,
    }
}

/// The path's `{name}` segments.
fn path_parameters(path: &str) -> Vec<utoipa::openapi::path::Parameter> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        })
        .collect()
}

fn operation_id(method: &HttpMethod, path: &str) -> String {
    let method = match method {
        Get => "get",
        Post => "post",
        Patch => "patch",
        Delete => "delete",
        _ => "other",
    };
    let path: String =
        path.trim_start_matches("/api").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{method}{}", path.trim_end_matches('_'))
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas: Schemas = Vec::new();
    register::<ErrorBody>(&mut schemas);
    let error = || {
        ResponseBuilder::new()
            .description("CCKM's error body (4xx names the field; 5xx says only \"internal error\")")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build()
    };
    for (method, path, tag, op) in operations() {
        let mut b =
            OperationBuilder::new().operation_id(Some(operation_id(&method, &path))).summary(Some(op.summary)).tag(tag);
        for p in path_parameters(&path) {
            b = b.parameter(p);
        }
        for (name, description) in &op.headers {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if let Some(q) = &op.query {
            for p in query_parameters(q) {
                b = b.parameter(p);
            }
        }
        if let Some((body, required)) = op.body {
            (body.register)(&mut schemas);
            let content = ContentBuilder::new().schema(Some(body.schema)).build();
            let required = if required { Required::True } else { Required::False };
            b = b.request_body(Some(
                RequestBodyBuilder::new().content("application/json", content).required(Some(required)).build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description("success");
        match op.answer {
            Some(answer) => {
                (answer.register)(&mut schemas);
                for media in op.media {
                    ok = ok.content(*media, ContentBuilder::new().schema(Some(answer.schema.clone())).build());
                }
            }
            None if op.status != 204 => {
                ok = ok.content("application/json", ContentBuilder::new().build());
            }
            None => {}
        }
        b = b.response(op.status.to_string(), ok.build()).response("default", error());
        b = if op.public {
            b.securities(Some(Vec::<SecurityRequirement>::new()))
        } else {
            b.security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        };
        paths.add_path_operation(path, vec![method], b.build());
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    let info = InfoBuilder::new()
        .title("keyfleet")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Bulk jobs on AWS KMS and Azure Key Vault keys; a CCKM-compatible REST API. Authenticate with \
             POST /api/v1/auth/tokens and send the jwt as a Bearer token.",
        ))
        .build();
    let tags: Vec<Tag> = ["health", "auth", "usermgmt", "audit", "aws", "azure"].into_iter().map(Tag::new).collect();
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components.build())).tags(Some(tags)).build()
}

/// The document as JSON text, served by `GET /openapi.json`.
pub fn document_json() -> String {
    document().to_json().unwrap_or_else(|e| {
        // Only a bug in the document itself gets here; the route then says so instead of panicking.
        tracing::error!(error = %e, "the OpenAPI document does not serialise");
        String::from("{}")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn documents_exactly_the_mounted_routes() {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).expect("JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object().expect("path item").keys().map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let mounted: BTreeSet<(String, String)> =
            crate::mounted_routes().into_iter().map(|(m, p)| (m.to_string(), p)).collect();
        assert_eq!(documented, mounted);
        if let Ok(out) = std::env::var("KEYFLEET_OPENAPI_OUT") {
            std::fs::write(out, document_json()).expect("write");
        }
    }
}
