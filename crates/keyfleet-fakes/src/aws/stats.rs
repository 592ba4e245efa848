//! Call counts per (account, region, operation): how many calls were answered, throttled,
//! failed or dropped. What `GET /_fake/stats` and [`super::FakeKms::stats`] show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CallRecord;
use super::faults::{CONNECTION_DROPPED, DROPPED_AFTER_APPLY};

/// How calls ended. `calls = ok + throttled + errors + dropped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsCallCounts {
    pub calls: u64,
    /// Answered successfully.
    pub ok: u64,
    /// Answered `ThrottlingException` (a quota or the per-key interval).
    pub throttled: u64,
    /// Answered with any other error: AWS's validation and state errors, and injected 5xx.
    pub errors: u64,
    /// Closed without an answer, before or after applying the call.
    pub dropped: u64,
}

impl KmsCallCounts {
    fn count(&mut self, error: Option<&str>) {
        self.calls += 1;
        match error {
            None => self.ok += 1,
            Some("ThrottlingException") => self.throttled += 1,
            Some(CONNECTION_DROPPED | DROPPED_AFTER_APPLY) => self.dropped += 1,
            Some(_) => self.errors += 1,
        }
    }
}

/// The counts of one operation in one account and region. Calls without a readable credential
/// have an empty account and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsOperationStats {
    pub account: String,
    pub region: String,
    pub operation: String,
    #[serde(flatten)]
    pub counts: KmsCallCounts,
}

/// Every call the fake received since it started, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeKmsStats {
    /// Sorted by account, region, operation.
    pub operations: Vec<KmsOperationStats>,
    pub totals: KmsCallCounts,
}

impl FakeKmsStats {
    /// The counts of one operation in one account and region (zero if it was never called).
    pub fn get(&self, account: &str, region: &str, operation: &str) -> KmsCallCounts {
        self.operations
            .iter()
            .find(|s| s.account == account && s.region == region && s.operation == operation)
            .map(|s| s.counts)
            .unwrap_or_default()
    }
}

/// The running counts, updated with each call log record.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    by_operation: BTreeMap<(String, String, String), KmsCallCounts>,
    totals: KmsCallCounts,
}

impl Stats {
    pub(crate) fn count(&mut self, call: &CallRecord) {
        let key = (call.account.clone(), call.region.clone(), call.operation.clone());
        self.by_operation.entry(key).or_default().count(call.error.as_deref());
        self.totals.count(call.error.as_deref());
    }

    pub(crate) fn snapshot(&self) -> FakeKmsStats {
        FakeKmsStats {
            operations: self
                .by_operation
                .iter()
                .map(|((account, region, operation), counts)| KmsOperationStats {
                    account: account.clone(),
                    region: region.clone(),
                    operation: operation.clone(),
                    counts: *counts,
                })
                .collect(),
            totals: self.totals,
        }
    }
}
