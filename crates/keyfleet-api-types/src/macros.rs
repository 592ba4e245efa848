//! The shapes many wire types share, declared once: the header of every CCKM resource, the status fields of
//! every job, and the paging parameters of every list query. Each macro writes a plain struct; the fields keep
//! their names and their order on the wire.

/// A CCKM resource: `id`, `uri`, `account`, `createdAt` and `updatedAt` first, then its own fields.
macro_rules! resource {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, utoipa::ToSchema, serde::Serialize, serde::Deserialize, PartialEq)]
        pub struct $name {
            pub id: String,
            pub uri: String,
            pub account: String,
            #[serde(rename = "createdAt")]
            pub created_at: $crate::Timestamp,
            #[serde(rename = "updatedAt")]
            pub updated_at: $crate::Timestamp,
            $($fields)*
        }
    };
}

/// A job resource (bulk or synchronization job, either cloud): the resource header, then `completed_at` (absent
/// while the job runs), `overall_status`, `detailed_status`, `abort` and `cloud`, then its own fields.
macro_rules! job_resource {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        resource! {
            $(#[$attr])*
            pub struct $name {
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub completed_at: Option<$crate::Timestamp>,
                pub overall_status: String,
                pub detailed_status: std::collections::BTreeMap<String, String>,
                pub abort: bool,
                pub cloud: String,
                $($fields)*
            }
        }

        impl $crate::JobResource for $name {
            fn id(&self) -> &str {
                &self.id
            }
            fn overall_status(&self) -> &str {
                &self.overall_status
            }
            fn detailed_status(&self) -> &std::collections::BTreeMap<String, String> {
                &self.detailed_status
            }
        }
    };
}

/// The query of a list route: its own filters, then `skip`, `limit` and `sort`. Values stay strings (or
/// optional numbers) so that the server can name a malformed one.
macro_rules! list_query {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, utoipa::ToSchema, Default, serde::Serialize, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($fields)*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub skip: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub limit: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sort: Option<String>,
        }
    };
}

/// The body of a bulk-job create route (either cloud): its own fields, then the safety extensions every create
/// takes — `dry_run`, `max_items`, `max_failures` and `max_failure_percent` — and `safety()` to read them. Unknown
/// fields are refused.
macro_rules! bulkjob_create {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, utoipa::ToSchema, Default, serde::Serialize, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($fields)*
            /// Extension: resolve and store the job as a plan (`overall_status: planned`); nothing runs until
            /// `.../confirm`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub dry_run: Option<bool>,
            /// Extension: the most items the request may resolve to; needed above the server's
            /// `safety_confirm_above` (unless the job is a confirmed plan).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_items: Option<u64>,
            /// Extension: stop the job once more items than this failed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_failures: Option<u64>,
            /// Extension: stop the job once more than this percentage of its finished items failed (looked at
            /// from 100 finished items on); default the server's `safety_max_failure_percent`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_failure_percent: Option<u64>,
        }

        impl $name {
            /// The safety extensions of the request.
            pub fn safety(&self) -> $crate::bulkjob::JobSafety {
                $crate::bulkjob::JobSafety {
                    dry_run: self.dry_run == Some(true),
                    max_items: self.max_items,
                    max_failures: self.max_failures,
                    max_failure_percent: self.max_failure_percent,
                }
            }
        }
    };
}
