//! The audit trail's records and their hash chain: the one definition of the canonical encoding, used by the
//! store when it appends a record and by `keyfleet audit verify` when it checks them.
//!
//! Record `n` carries `prev_hash` = the `hash` of record `n - 1` (64 zeros for the first) and `hash` =
//! SHA-256 (hex) of [`canonical`]: the record's own fields and `prev_hash`. Editing a record changes its
//! hash; deleting one leaves a gap in `seq` and a `prev_hash` that matches nothing; moving one breaks both.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::sha256_hex;
use crate::time::to_micros;

/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Outcome of a change the API made (the change is committed with its record, so it succeeded).
pub const OUTCOME_SUCCESS: &str = "success";
/// Outcome of an attempt that changed nothing (a refused login).
pub const OUTCOME_FAILURE: &str = "failure";

/// Who did something, from where, in which request: the part of a record the HTTP edge knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditActor {
    /// The username (for a refused login: the name that was tried); `system` for the engine.
    pub user: String,
    /// The client's IP address, empty when unknown.
    pub client: String,
    /// The request's id (`X-Request-Id`), empty outside a request.
    pub request_id: String,
}

impl AuditActor {
    /// The engine, acting on its own (a cloud call of a job's item).
    pub fn system() -> Self {
        Self { user: "system".into(), ..Default::default() }
    }

    /// A record of `action` on `resource` by this actor, succeeded.
    pub fn event(&self, action: &str, resource: impl Into<String>) -> AuditEvent {
        AuditEvent {
            actor: self.clone(),
            action: action.into(),
            resource: resource.into(),
            outcome: OUTCOME_SUCCESS.into(),
            details: serde_json::Value::Null,
        }
    }
}

/// What a record says, before the store gives it its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub actor: AuditActor,
    /// Dotted, `<resource kind>.<verb>`: `user.create`, `auth.login`, `aws.DisableKey`, ...
    pub action: String,
    /// What was acted on: `<kind>:<id>` (`user:<uuid>`, `bulkjob:<uuid>`, `aws-key:<arn>`), or a name.
    pub resource: String,
    /// [`OUTCOME_SUCCESS`], [`OUTCOME_FAILURE`], or a cloud call's outcome (`Success`, `Failed: <code>: ...`).
    pub outcome: String,
    /// Anything else worth keeping (changed fields, a cloud request id); never a secret. `Null` when nothing.
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// `details` as stored and hashed: compact JSON, keys in the order they were built.
    pub fn details_text(&self) -> String {
        if self.details.is_null() { String::new() } else { self.details.to_string() }
    }
}

/// The record of a state-changing call the engine sent to a cloud for a bulk-job item, written with the item's
/// outcome in the transaction that finishes the item: action `<cloud>.<cloud action>` (`aws.DisableKey`), the
/// key as resource, the item's detail (`Success`, `Failed: <code>: ...`) as outcome, the cloud's request id.
pub fn cloud_call(
    cloud: &str,
    cloud_action: &str,
    key: &str,
    cloud_request_id: Option<&str>,
    job: &str,
    outcome: &str,
) -> AuditEvent {
    AuditActor::system()
        .event(&format!("{cloud}.{cloud_action}"), format!("{cloud}-key:{key}"))
        .outcome(outcome)
        .details(serde_json::json!({"bulkjob": job, "cloud_request_id": cloud_request_id}))
}

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// 1, 2, 3, ... with no gaps: the chain's order.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub user: String,
    pub client: String,
    pub request_id: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    /// JSON text, or empty.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The record `event` becomes when appended after a record whose hash is `prev_hash`.
    pub fn chain(seq: i64, at: DateTime<Utc>, event: &AuditEvent, prev_hash: &str) -> Self {
        let mut r = AuditRecord {
            seq,
            at,
            user: event.actor.user.clone(),
            client: event.actor.client.clone(),
            request_id: event.actor.request_id.clone(),
            action: event.action.clone(),
            resource: event.resource.clone(),
            outcome: event.outcome.clone(),
            details: event.details_text(),
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        r.hash = r.computed_hash();
        r
    }

    /// The canonical encoding: a JSON array of every field but `hash`, in this order, timestamps as integer
    /// microseconds. Changing it breaks every existing chain: don't.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::json!([
            self.seq,
            to_micros(self.at),
            self.user,
            self.client,
            self.request_id,
            self.action,
            self.resource,
            self.outcome,
            self.details,
            self.prev_hash,
        ])
        .to_string()
        .into_bytes()
    }

    pub fn computed_hash(&self) -> String {
        sha256_hex(&self.canonical())
    }
}

/// Which records `GET /v1/audit/records` lists; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    pub user: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
}

/// Why a chain is broken, at the first record that shows it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("audit record {seq} is broken: {why}")]
pub struct ChainBreak {
    pub seq: i64,
    pub why: String,
}

/// Follows a chain read in `seq` order, one record at a time (records can be read in pages).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_seq: 1, prev_hash: GENESIS_HASH.to_string() }
    }
}

impl ChainVerifier {
    /// Checks the next record.
    pub fn check(&mut self, r: &AuditRecord) -> Result<(), ChainBreak> {
        let broken = |why: String| Err(ChainBreak { seq: r.seq, why });
        if r.seq != self.expected_seq {
            return broken(format!(
                "expected record {} next, found {} (a record was deleted or moved)",
                self.expected_seq, r.seq
            ));
        }
        if r.prev_hash != self.prev_hash {
            return broken("its prev_hash is not the previous record's hash (a record was deleted or moved)".into());
        }
        if r.computed_hash() != r.hash {
            return broken("its hash does not match its contents (the record was edited)".into());
        }
        self.expected_seq += 1;
        self.prev_hash = r.hash.clone();
        Ok(())
    }

    /// How many records were checked.
    pub fn count(&self) -> i64 {
        self.expected_seq - 1
    }

    /// The hash of the last record checked (the chain's head).
    pub fn head(&self) -> &str {
        &self.prev_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let actor = AuditActor { user: "admin".into(), client: "127.0.0.1".into(), request_id: "r".into() };
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let e = actor.event("user.create", format!("user:{seq}")).details(serde_json::json!({"n": seq}));
                let r = AuditRecord::chain(seq, crate::time::from_micros(seq * 1000), &e, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn verify(records: &[AuditRecord]) -> Result<i64, ChainBreak> {
        let mut v = ChainVerifier::default();
        records.iter().try_for_each(|r| v.check(r))?;
        Ok(v.count())
    }

    #[test]
    fn an_intact_chain_verifies_and_edits_deletions_and_moves_are_found_at_the_first_broken_record() {
        let records = chain(4);
        assert_eq!(verify(&records), Ok(4));

        let mut edited = records.clone();
        edited[1].outcome = "failure".into();
        assert_eq!(verify(&edited).expect_err("edited").seq, 2);

        let mut deleted = records.clone();
        deleted.remove(2);
        assert_eq!(verify(&deleted).expect_err("deleted").seq, 4);

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped).expect_err("swapped").seq, 3);
        // Renumbering the moved rows to hide the gap still breaks the links.
        swapped[1].seq = 2;
        swapped[2].seq = 3;
        assert_eq!(verify(&swapped).expect_err("renumbered").seq, 2);
    }
}
