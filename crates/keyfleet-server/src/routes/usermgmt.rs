use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::{get, post};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::common::ListParams;
use keyfleet_api_types::usermgmt::{
    CreateGroupRequest, CreateUserRequest, GroupView, UpdateGroupRequest, UpdateUserRequest, UserView,
};
use keyfleet_service::paging::page;
use keyfleet_store::sort_fields;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::{AppState, views};

pub fn routes() -> Routes {
    Routes::new()
        .route("/v1/usermgmt/users", get(list_users).post(create_user))
        .route("/v1/usermgmt/users/{id}", get(get_user).patch(update_user).delete(delete_user))
        .route("/v1/usermgmt/groups", get(list_groups).post(create_group))
        .route("/v1/usermgmt/groups/{name}", get(get_group).patch(update_group).delete(delete_group))
        .route("/v1/usermgmt/groups/{name}/users/{user_id}", post(add_member).delete(remove_member))
}

type S = State<Arc<AppState>>;

async fn create_user(
    State(s): S,
    Auth(c): Auth,
    Json(req): Json<CreateUserRequest>,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(views::user(s.services.create_user(&c, req).await?))))
}

async fn get_user(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<axum::Json<UserView>, ApiError> {
    Ok(axum::Json(views::user(s.services.get_user(&c, &id).await?)))
}

async fn update_user(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<UpdateUserRequest>,
) -> Result<axum::Json<UserView>, ApiError> {
    Ok(axum::Json(views::user(s.services.update_user(&c, &id, req).await?)))
}

async fn delete_user(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_user(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_group(State(s): S, Auth(c): Auth, Path(name): Path<String>) -> Result<axum::Json<GroupView>, ApiError> {
    Ok(axum::Json(views::group(s.services.get_group(&c, &name).await?)))
}

async fn update_group(
    State(s): S,
    Auth(c): Auth,
    Path(name): Path<String>,
    Json(req): Json<UpdateGroupRequest>,
) -> Result<axum::Json<GroupView>, ApiError> {
    Ok(axum::Json(views::group(s.services.update_group(&c, &name, req).await?)))
}

async fn delete_group(State(s): S, Auth(c): Auth, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_group(&c, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(
    State(s): S,
    Auth(c): Auth,
    Query(q): Query<ListParams>,
) -> Result<axum::Json<ListEnvelope<UserView>>, ApiError> {
    let p = page(&q, sort_fields::USERS)?;
    let (users, total) = s.services.list_users(&c, &p).await?;
    Ok(axum::Json(views::list(users, total, &p, views::user)))
}

async fn create_group(
    State(s): S,
    Auth(c): Auth,
    Json(req): Json<CreateGroupRequest>,
) -> Result<(StatusCode, axum::Json<GroupView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(views::group(s.services.create_group(&c, req).await?))))
}

async fn list_groups(
    State(s): S,
    Auth(c): Auth,
    Query(q): Query<ListParams>,
) -> Result<axum::Json<ListEnvelope<GroupView>>, ApiError> {
    let p = page(&q, sort_fields::NAMED)?;
    let (groups, total) = s.services.list_groups(&c, &p).await?;
    Ok(axum::Json(views::list(groups, total, &p, views::group)))
}

async fn add_member(
    State(s): S,
    Auth(c): Auth,
    Path((name, user_id)): Path<(String, String)>,
) -> Result<axum::Json<GroupView>, ApiError> {
    Ok(axum::Json(views::group(s.services.add_user_to_group(&c, &name, &user_id).await?)))
}

async fn remove_member(
    State(s): S,
    Auth(c): Auth,
    Path((name, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.services.remove_user_from_group(&c, &name, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
