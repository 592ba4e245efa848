//! `GET /v1/audit/records`: the audit trail (keyfleet's; CCKM has no equivalent route).

use serde::{Deserialize, Serialize};

use crate::Timestamp;

list_query! {
    /// Query of `GET /v1/audit/records`: every filter given must hold.
    pub struct AuditListQuery {
        /// RFC 3339; records at or after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub since: Option<String>,
        /// RFC 3339; records before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub until: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub action: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub resource: Option<String>,
    }
}

/// One record, as stored: the chain's fields included, so a client can check the chain itself.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AuditRecordView {
    pub seq: i64,
    pub at: Timestamp,
    pub user: String,
    pub client: String,
    pub request_id: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    /// The JSON text the hash covers (empty when none).
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}
