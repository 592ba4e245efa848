//! Bulk jobs: the create body and the job resource (AWS `bulkjob`, Azure `bulkjobs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

bulkjob_create! {
    /// `POST /v1/cckm/aws/bulkjob`. Every field is optional here so that the server, not serde, decides what is
    /// missing and names it in the 400; a wrong type is reported with the field's path by the JSON extractor.
    pub struct CreateAwsBulkJob {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub operation: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keys: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub days: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub policy_template_id: Option<String>,
        /// Extension: the keys as a selector instead of `keys` (no 100-key limit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub selector: Option<KeySelectorRequest>,
    }
}

/// The safety extensions of a create request (issue 10), whichever cloud.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobSafety {
    pub dry_run: bool,
    pub max_items: Option<u64>,
    pub max_failures: Option<u64>,
    pub max_failure_percent: Option<u64>,
}

/// Extension: which keys a job acts on, resolved when the job is created into a frozen list of items. Either
/// `ids` (any number of key references), filters (all must hold; gone keys are never selected) or `all: true`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeySelectorRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// KMS container names or ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    /// `{"team": "blue"}` requires that tag value; `{"team": null}` only the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_state: Option<String>,
    /// Every key of the inventory (gone keys excepted); needed to select without `ids` or a filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// Extension: how far a job is.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub pending: i64,
    /// Finished items in percent of all, one decimal.
    pub percent: f64,
}

/// Extension: the data of one event of `GET .../bulkjob(s)/{id}/events` (`progress` while the job runs, `end`
/// with its terminal status). `id` is also the event's SSE id: a client that reconnects with it as
/// `Last-Event-ID` is not sent the same state again.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct ProgressEvent {
    pub id: String,
    pub bulkjob_id: String,
    pub overall_status: String,
    pub total: i64,
    /// Items that ended (succeeded, failed or skipped).
    pub done: i64,
    pub counts: ProgressCounts,
    /// `done` in percent of `total`, one decimal.
    pub percent: f64,
    /// Items ended per second over the last seconds this stream watched; absent until measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Seconds left at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_secs: Option<f64>,
}

/// A job's items by status.
#[derive(Debug, Clone, Copy, Default, utoipa::ToSchema, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProgressCounts {
    pub planned: i64,
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// Extension: one item of a job (`GET .../bulkjob/{id}/items`).
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct ItemView {
    pub key_id: String,
    pub seq: i64,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub attempts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_after: Option<String>,
    /// A planned item: its target's state now (AWS: the key's state as last synchronized; Azure: `stored`, or
    /// `absent` once the backup is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    /// A planned item: what confirming the plan will do to it (the operation, or `none (already ...)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(rename = "updatedAt")]
    pub updated_at: Timestamp,
}

/// Query of `GET .../bulkjob/{id}/items`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ItemListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Extension: the summary of a planned job (`dry_run`), as stored with it.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// Items in all.
    pub items: i64,
    /// Items by KMS container (AWS) or vault (Azure).
    pub by_container: BTreeMap<String, i64>,
    /// Items by region (AWS region; Azure: the vault's location).
    pub by_region: BTreeMap<String, i64>,
    /// Items by their target's current state.
    pub by_state: BTreeMap<String, i64>,
    /// Items already in the state the operation puts them in: confirming changes nothing for them.
    pub no_ops: i64,
    /// The first items, with their current state and intended action; `.../items` lists them all.
    pub sample: Vec<PlanSample>,
}

/// One item of a plan's sample.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
pub struct PlanSample {
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    pub action: String,
}

job_resource! {
    /// The job resource, field for field as CCKM returns it, plus the extensions `progress` and the echoed request
    /// parameters. `completed_at` is absent while the job runs; `detailed_status` holds one entry per finished item
    /// — for jobs over 1,000 items only the failures (the first 1,000), with `keys` empty: page through
    /// `.../items` instead. `days` and `policy_template_id` echo the request
    /// and appear only for the operations that take them.
    pub struct BulkJobView {
        pub keys: Vec<String>,
        pub operation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub days: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub policy_template_id: Option<String>,
        /// Extension: the selector the job was created with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub selector: Option<serde_json::Value>,
        /// Azure `delete-key-backups`: the request's parameters, echoed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delete_key_backups_param: Option<serde_json::Value>,
        /// Extension: counts of finished and pending items.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub progress: Option<Progress>,
        /// Extension: a job created with `dry_run`: what it will do (see [`Plan`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub plan: Option<serde_json::Value>,
        /// Extension: a planned job can be confirmed until then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub plan_expires_at: Option<Timestamp>,
        /// Extension: the job stops once more items than this failed, when the create named it. (The percentage
        /// threshold is not echoed: it is on every job, and CCKM clients see exactly CCKM's fields.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_failures: Option<i64>,
        /// Extension: why the job stopped before running every item (a failure threshold was crossed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stop_reason: Option<String>,
        /// Extension: the finished job whose failed and skipped items this job retries (`retry-failed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry_of: Option<String>,
        /// Extension: the finished job whose changes this job puts back (`revert`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub revert_of: Option<String>,
    }
}

/// Extension: the body of `POST .../bulkjob(s)/{id}/retry-failed` (may be empty or `{}`).
#[derive(Debug, Clone, utoipa::ToSchema, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetryFailedRequest {
    /// Plan the retry (`overall_status: "planned"`) instead of starting it; confirm it as any plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// Extension: the body of `POST .../bulkjob(s)/{id}/revert`: no fields (a revert is always a plan).
#[derive(Debug, Clone, utoipa::ToSchema, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RevertRequest {}

list_query! {
    /// Query of `GET /v1/cckm/aws/bulkjob` and `GET /v1/cckm/azure/bulkjobs`.
    pub struct BulkJobListQuery {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub overall_status: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cloud: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub operation: Option<String>,
    }
}
