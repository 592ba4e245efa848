//! `GET /v1/audit/records`: the audit trail, for admins.

use keyfleet_api_types::audit::AuditListQuery;
use keyfleet_api_types::common::ListParams;
use keyfleet_store::audit::{AuditFilter, AuditRecord};
use keyfleet_store::sort_fields;

use crate::paging::page;
use crate::{Caller, Result, ServiceError, Services};

fn time(field: &str, value: Option<String>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| t.to_utc())
                .map_err(|e| ServiceError::invalid(field, format!("expected an RFC 3339 time, got {v:?}: {e}")))
        })
        .transpose()
}

impl Services {
    pub async fn list_audit_records(
        &self,
        caller: &Caller,
        q: AuditListQuery,
    ) -> Result<(Vec<AuditRecord>, u64, keyfleet_core::Page)> {
        caller.require_admin()?;
        let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort }, sort_fields::AUDIT)?;
        let filter = AuditFilter {
            since: time("since", q.since)?,
            until: time("until", q.until)?,
            user: q.user,
            action: q.action,
            resource: q.resource,
        };
        let (records, total) = self.store.list_audit(&filter, &p).await?;
        Ok((records, total, p))
    }
}
