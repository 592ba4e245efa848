//! Shapes shared by every resource: timestamps, list envelopes, the error body, ACL entries.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The account every resource of the root domain belongs to.
pub const ROOT_ACCOUNT: &str = "kylo:kylo:admin:accounts:kylo";

/// A point in time on the wire: RFC 3339, UTC, microsecond precision (`2023-02-10T08:19:48.558869Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn format(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| Timestamp(t.with_timezone(&Utc))).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, UTC, microsecond precision"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

/// `{"skip": N, "limit": N, "total": N, "resources": [...]}`; `total` counts every match.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListEnvelope<T> {
    pub skip: u64,
    pub limit: u64,
    pub total: u64,
    pub resources: Vec<T>,
}

/// The body of every error answer.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: i32,
    #[serde(rename = "codeDesc")]
    pub code_desc: String,
    pub message: String,
    #[serde(rename = "requestID", default)]
    pub request_id: String,
}

/// One ACL entry as a container shows it: who, and which actions.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AclView {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<String>,
    pub actions: Vec<String>,
}

/// `POST .../update-acls` body.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateAclsRequest {
    pub acls: Vec<AclChange>,
}

/// One change in an `update-acls` request: grant (`permit: true`) or revoke actions for a user or group.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub permit: bool,
    pub actions: Vec<String>,
}

list_query! {
    /// Paging and sorting query parameters shared by every list route.
    pub struct ListParams {
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_six_fractional_digits_and_z() {
        let t = Utc.with_ymd_and_hms(2023, 2, 10, 8, 19, 48).single().map(Timestamp);
        let t = t.expect("valid date");
        assert_eq!(t.format(), "2023-02-10T08:19:48.000000Z");
        let json = serde_json::to_string(&t).expect("serialises");
        let back: Timestamp = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, t);
    }
}
