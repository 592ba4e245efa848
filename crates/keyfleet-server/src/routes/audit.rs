use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::get;
use axum::extract::State;
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::audit::{AuditListQuery, AuditRecordView};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Query;
use crate::{AppState, views};

pub fn routes() -> Routes {
    Routes::new().route("/v1/audit/records", get(list_records))
}

/// `GET /v1/audit/records` (admins).
async fn list_records(
    State(s): State<Arc<AppState>>,
    Auth(c): Auth,
    Query(q): Query<AuditListQuery>,
) -> Result<axum::Json<ListEnvelope<AuditRecordView>>, ApiError> {
    let (records, total, p) = s.services.list_audit_records(&c, q).await?;
    Ok(axum::Json(views::list(records, total, &p, views::audit_record)))
}
