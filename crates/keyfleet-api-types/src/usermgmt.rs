//! `/v1/usermgmt/users` and `/v1/usermgmt/groups`.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// `POST /v1/usermgmt/users`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct UserView {
    pub user_id: String,
    pub username: String,
    pub name: String,
    pub email: String,
    pub nickname: String,
    pub groups: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<Timestamp>,
    pub logins_count: i64,
    /// keyfleet's: present (and true) only for a disabled user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// `PATCH /v1/usermgmt/users/{id}` (admins): every field optional; `password` follows the password policy and,
/// like `disabled: true`, ends every session of the user.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// keyfleet's: disable (true) or enable (false) the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `PATCH /v1/usermgmt/groups/{name}`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /v1/usermgmt/groups`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct GroupView {
    pub name: String,
    pub description: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub users_count: i64,
}
