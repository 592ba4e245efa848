//! AWS KMS's pacing partitions: one per (account, region, action), at AWS's documented default quotas
//! unless the KMS container sets its own.

use crate::pacing::Partition;

/// The bucket of `action` calls in one account and region.
pub fn partition(account: &str, region: &str, action: &'static str) -> Partition {
    Partition { account: account.to_string(), region: region.to_string(), action }
}

/// Requests per second for each AWS KMS action (AWS's documented default quotas).
pub fn default_rate(action: &str) -> Option<f64> {
    Some(match action {
        "EnableKey" | "DisableKey" | "CancelKeyDeletion" => 5.0,
        "ScheduleKeyDeletion" | "PutKeyPolicy" => 15.0,
        "TagResource" | "UntagResource" => 10.0,
        "DescribeKey" | "ListResourceTags" => 2000.0,
        "GetKeyPolicy" => 1000.0,
        "ListKeys" | "ListAliases" => 500.0,
        _ => return None,
    })
}
