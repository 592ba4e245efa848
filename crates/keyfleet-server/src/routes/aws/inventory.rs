//! What AWS bulk jobs act on: connections, KMS containers (with ACLs), keys, policy templates.

use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::{get, post};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::aws::*;
use keyfleet_api_types::common::{ListParams, UpdateAclsRequest};
use keyfleet_service::paging::page;
use keyfleet_store::sort_fields;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::{AppState, views};

pub fn routes() -> Routes {
    connection_routes!(
        "aws",
        AwsConnectionRequest => AwsConnectionView,
        views::aws::connection,
        create_aws_connection,
        get_aws_connection,
        update_aws_connection,
        list_aws_connections,
        delete_aws_connection
    )
    .route("/v1/cckm/aws/kms", get(list_kms).post(create_kms))
    .route("/v1/cckm/aws/kms/{id}", get(get_kms).patch(update_kms).delete(delete_kms))
    .route("/v1/cckm/aws/kms/{id}/update-acls", post(update_acls))
    .route("/v1/cckm/aws/keys", get(list_keys))
    .route("/v1/cckm/aws/keys/{id}", get(get_key))
    .route("/v1/cckm/aws/templates", get(list_templates).post(create_template))
    .route("/v1/cckm/aws/templates/{id}", get(get_template).patch(update_template).delete(delete_template))
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;
type Answer<T> = Result<axum::Json<T>, ApiError>;

// --- KMS containers -----------------------------------------------------------------------------------

async fn create_kms(State(s): S, Auth(c): Auth, Json(req): Json<KmsRequest>) -> Created<KmsView> {
    Ok((StatusCode::CREATED, axum::Json(views::aws::kms(s.services.create_kms(&c, req).await?))))
}

async fn get_kms(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<KmsView> {
    Ok(axum::Json(views::aws::kms(s.services.get_kms(&c, &id).await?)))
}

async fn update_kms(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<KmsRequest>,
) -> Answer<KmsView> {
    Ok(axum::Json(views::aws::kms(s.services.update_kms(&c, &id, req).await?)))
}

async fn list_kms(State(s): S, Auth(c): Auth, Query(q): Query<ListParams>) -> Answer<ListEnvelope<KmsView>> {
    let p = page(&q, sort_fields::NAMED)?;
    let (list, total) = s.services.list_kms(&c, &p).await?;
    Ok(axum::Json(views::list(list, total, &p, views::aws::kms)))
}

async fn delete_kms(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_kms(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_acls(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<UpdateAclsRequest>,
) -> Answer<KmsView> {
    Ok(axum::Json(views::aws::kms(s.services.update_kms_acls(&c, &id, req).await?)))
}

// --- keys ---------------------------------------------------------------------------------------------

async fn list_keys(State(s): S, Auth(c): Auth, Query(q): Query<AwsKeyQuery>) -> Answer<ListEnvelope<AwsKeyView>> {
    let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort.clone() }, sort_fields::KEYS)?;
    let (keys, total) = s.services.list_aws_keys(&c, q, &p).await?;
    Ok(axum::Json(views::list(keys, total, &p, views::aws::key)))
}

async fn get_key(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<AwsKeyView> {
    Ok(axum::Json(views::aws::key(s.services.get_aws_key(&c, &id).await?)))
}

// --- policy templates ---------------------------------------------------------------------------------

async fn create_template(State(s): S, Auth(c): Auth, Json(req): Json<TemplateRequest>) -> Created<TemplateView> {
    Ok((StatusCode::CREATED, axum::Json(views::aws::template(s.services.create_template(&c, req).await?))))
}

async fn get_template(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<TemplateView> {
    Ok(axum::Json(views::aws::template(s.services.get_template(&c, &id).await?)))
}

async fn update_template(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<TemplateRequest>,
) -> Answer<TemplateView> {
    Ok(axum::Json(views::aws::template(s.services.update_template(&c, &id, req).await?)))
}

async fn list_templates(State(s): S, Auth(c): Auth, Query(q): Query<ListParams>) -> Answer<ListEnvelope<TemplateView>> {
    let p = page(&q, sort_fields::NAMED)?;
    let (list, total) = s.services.list_templates(&c, &p).await?;
    Ok(axum::Json(views::list(list, total, &p, views::aws::template)))
}

async fn delete_template(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_template(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
