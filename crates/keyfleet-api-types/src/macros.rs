//! The shapes many wire types share, declared once: the header of every CCKM resource, the status fields of
//! every job, and the paging parameters of every list query. Each macro writes a plain struct; the fields keep
//! their names and their order on the wire.

/// A CCKM resource: `id`, `uri`, `account`, `createdAt` and `updatedAt` first, then its own fields.
macro_rules! resource {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
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
        #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
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
