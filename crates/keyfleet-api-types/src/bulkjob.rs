//! Bulk jobs: the create body and the job resource (AWS `bulkjob`, Azure `bulkjobs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// `POST /v1/cckm/aws/bulkjob`. Every field is optional here so that the server, not serde, decides what is
/// missing and names it in the 400; a wrong type is reported with the field's path by the JSON extractor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CreateAwsBulkJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_template_id: Option<String>,
}

/// The job resource, field for field as CCKM returns it. `completed_at` is absent while the job runs;
/// `detailed_status` holds one entry per finished item. `days` and `policy_template_id` echo the request
/// and appear only for the operations that take them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BulkJobView {
    pub id: String,
    pub uri: String,
    pub account: String,
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
    #[serde(rename = "updatedAt")]
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    pub overall_status: String,
    pub detailed_status: BTreeMap<String, String>,
    pub abort: bool,
    pub cloud: String,
    pub keys: Vec<String>,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_template_id: Option<String>,
}

/// Query of `GET /v1/cckm/aws/bulkjob`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BulkJobListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
}
