//! One attempt at one AWS item: read the key, act unless it is already in the target state, record.

use keyfleet_clouds::aws::KeyMetadata;
use keyfleet_clouds::{AwsKms, CloudError, ErrorKind, Receipt};
use keyfleet_core::rules::{done_in_state, restore_steps};
use keyfleet_core::*;
use keyfleet_store::CloudCall;

use super::pacing::partition;
use super::resolve::AwsTarget;

use crate::cloud::ItemResult;
use crate::retry::Verdict;
use crate::worker::ItemLease;
use crate::{Engine, EngineError};

/// The tag `applypolicytemplate` leaves on each key, as CCKM does.
pub const POLICY_TEMPLATE_TAG: &str = "cckm_policy_template_id";

impl Engine {
    /// One attempt at an item whose key was resolved with its claim (`target`: `Err` names what is gone).
    /// A stop of the job, or a refusal of the connection's credentials, was checked right before (`stops.rs`).
    pub(crate) async fn run_aws_item(
        &self,
        item: &ClaimedItem,
        target: Result<Box<AwsTarget>, String>,
        lease: &ItemLease,
    ) -> Result<ItemResult, EngineError> {
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                return Ok(
                    ItemOutcome::Failed { code: "NotFoundException".into(), message: why, state_before: None }.into()
                );
            }
        };
        let held = Held { item, lease };
        if let Some(restore) = &item.restore {
            return Ok(self.restore(held, &target, restore).await);
        }
        // The key id, not the ARN: the client is already bound to the key's account and region, and some
        // KMS implementations (moto) mishandle ARNs in Enable/DisableKey.
        let key = target.key.material.key_id.clone();
        let cached = target.key.material.key_state.clone();
        // Read the key's real state first when this item was attempted before (it may have been interrupted
        // after the cloud acted: reconcile, never repeat) or when the cache says there is nothing to do
        // (confirm, and spare the action's quota). A fresh item on a key that needs the change goes straight
        // to the action: one call per key.
        let reconcile = item.attempts > 1 || done_in_state(item.operation, &cached);
        let before = if reconcile {
            let live = match self.describe(&target, &key).await {
                Ok(m) => m,
                Err(e) => return Ok(self.failure(item, &target, e, None)),
            };
            match self.already_done(item, &live, &target).await {
                Ok(true) => {
                    let refreshed = refreshed(&target, &live, None);
                    return Ok(success(Some(live.key_state.clone()), Some(live.key_state), refreshed));
                }
                Ok(false) => {}
                // Not knowing whether the change was made is no reason to make it again: retry later.
                Err(e) => return Ok(self.failure(item, &target, e, Some(live.key_state))),
            }
            live.key_state
        } else {
            cached
        };
        let policy = match item.operation {
            Operation::ApplyPolicyTemplate => Some(self.template_policy(item).await?),
            _ => None,
        };
        // The policy the template replaces, kept for a revert (only when the template changes it).
        let policy_before = match &policy {
            Some(p) => match self.key_policy(&target, &key).await {
                Ok(current) => (!same_policy(&current, p)).then_some(current),
                Err(e) => return Ok(self.failure(item, &target, e, Some(before))),
            },
            None => None,
        };
        // From here on the action is sent (unless the lease is lost first, and then nothing is recorded).
        let mut calls = Vec::new();
        if let Err(e) = self.effect(held, item.operation, &target, &key, policy.as_deref(), &mut calls).await {
            // The cache was stale and the key is in a state the action does not apply to: maybe it is already
            // where we want it (e.g. deletion already scheduled).
            if e.kind == ErrorKind::InvalidState
                && !reconcile
                && let Ok(live) = self.describe(&target, &key).await
                && let Ok(true) = self.already_done(item, &live, &target).await
            {
                let refreshed = refreshed(&target, &live, None);
                let done = success(Some(live.key_state.clone()), Some(live.key_state), refreshed);
                return Ok(ItemResult { cloud_calls: calls, ..done });
            }
            // The policy may have been replaced before the tag failed: what it was stays recorded.
            let failed = self.failure(item, &target, e, Some(before));
            return Ok(ItemResult { cloud_calls: calls, policy_before, ..failed });
        }
        // The action succeeded, so its result is known without another read.
        let after = effect_result(item.operation, item.params.days, &target.key.material, self.now());
        let applied = policy.as_deref().map(|p| (p, Some(template_tag(item))));
        let refreshed = refreshed(&target, &after, applied);
        let done = success(Some(before), Some(after.key_state), refreshed);
        Ok(ItemResult { cloud_calls: calls, policy_before, ..done })
    }

    /// A revert item: puts back the key's recorded policy and state from what the key is now (read first, on
    /// every attempt), with the fewest calls; a key already back needs none, so a retried attempt after an
    /// interruption does not repeat what the first one did.
    async fn restore(&self, held: Held<'_>, target: &AwsTarget, restore: &Restore) -> ItemResult {
        let item = held.item;
        let key = target.key.material.key_id.clone();
        let live = match self.describe(target, &key).await {
            Ok(m) => m,
            Err(e) => return self.failure(item, target, e, None),
        };
        let before = live.key_state.clone();
        let mut calls = Vec::new();
        let mut policy_before = None;
        if let Some(policy) = &restore.policy {
            let current = match self.key_policy(target, &key).await {
                Ok(p) => p,
                Err(e) => return self.failure(item, target, e, Some(before)),
            };
            if !same_policy(&current, policy) {
                let put = target.via.client.put_key_policy(&key, policy);
                if let Err(e) = self.change(held, target, &key, "PutKeyPolicy", put, &mut calls).await {
                    return ItemResult { cloud_calls: calls, ..self.failure(item, target, e, Some(before)) };
                }
                // A revert of this revert puts it back in turn.
                policy_before = Some(current);
            }
        }
        let mut after = live;
        if let Some(state) = &restore.state {
            let steps = match restore_steps(&after.key_state, state) {
                Ok(steps) => steps,
                Err(why) => {
                    let code = "KMSInvalidStateException".to_string();
                    let failed = ItemOutcome::Failed { code, message: why, state_before: Some(before) };
                    return ItemResult { cloud_calls: calls, policy_before, ..failed.into() };
                }
            };
            for op in steps {
                if let Err(e) = self.effect(held, op, target, &key, None, &mut calls).await {
                    let failed = self.failure(item, target, e, Some(before));
                    return ItemResult { cloud_calls: calls, policy_before, ..failed };
                }
                after = effect_result(op, None, &after, self.now());
            }
        }
        let refreshed = refreshed(target, &after, restore.policy.as_deref().map(|p| (p, None)));
        let done = success(Some(before), Some(after.key_state), refreshed);
        ItemResult { cloud_calls: calls, policy_before, ..done }
    }

    async fn key_policy(&self, target: &AwsTarget, key: &str) -> Result<String, CloudError> {
        self.paced(target, "GetKeyPolicy", target.via.client.get_key_policy(key)).await
    }

    /// Paces `call` on its (account, region, action) bucket and feeds the outcome back into the pacer.
    async fn paced<T, F>(&self, target: &AwsTarget, action: &'static str, call: F) -> Result<T, CloudError>
    where
        F: std::future::Future<Output = Result<T, CloudError>>,
    {
        self.paced_checked(target, action, None, call).await
    }

    /// `paced`, and when `held` is given, a check that this node still holds the item's lease both before the
    /// pacing slot and right before the call: a node paused past its lease must not send a change another
    /// node may already have made. The check after the slot is from this node's own knowledge of the lease
    /// (`Engine::confirm_lease`), so no store read delays a call past its slot.
    async fn paced_checked<T, F>(
        &self,
        target: &AwsTarget,
        action: &'static str,
        held: Option<Held<'_>>,
        call: F,
    ) -> Result<T, CloudError>
    where
        F: std::future::Future<Output = Result<T, CloudError>>,
    {
        if let Some(Held { item, lease }) = held
            && !self.confirm_lease(item, lease).await
        {
            return Err(lease_lost());
        }
        let p = partition(&target.via.account, &target.key.region, action);
        let _sent = self.pacer.acquire(&p, target.via.quotas.get(action).copied()).await;
        if let Some(Held { item, lease }) = held
            && !self.confirm_lease(item, lease).await
        {
            return Err(lease_lost());
        }
        let started = std::time::Instant::now();
        let result = match held {
            // The lease is checked once more by the client itself, right before the request leaves: a node
            // frozen in between must not send late (`keyfleet_clouds::send_by`).
            Some(Held { lease, .. }) => match keyfleet_clouds::send_by(self.send_deadline(lease), call).await {
                Ok(result) => result,
                Err(_missed) => return Err(lease_lost()),
            },
            None => call.await,
        };
        self.count_call(CLOUD_AWS, action, &result, started.elapsed());
        match &result {
            Ok(_) => self.pacer.succeeded(&p),
            Err(e) if e.kind == ErrorKind::Throttled => self.pacer.throttled(&p),
            Err(_) => {}
        }
        result
    }

    async fn describe(&self, target: &AwsTarget, key: &str) -> Result<KeyMetadata, CloudError> {
        self.paced(target, "DescribeKey", target.via.client.describe_key(key)).await
    }

    /// A state-changing call: spaced from other changes to the same key, paced on its bucket, and sent only
    /// while this node still holds the item.
    /// Each call sent is added to `calls` with AWS's request id (for the audit record of the item's outcome).
    async fn change<F>(
        &self,
        held: Held<'_>,
        target: &AwsTarget,
        key: &str,
        action: &'static str,
        call: F,
        calls: &mut Vec<CloudCall>,
    ) -> Result<(), CloudError>
    where
        F: std::future::Future<Output = Result<Receipt, CloudError>>,
    {
        self.spacer.space(key).await;
        let sent = |request_id| CloudCall { cloud: CLOUD_AWS, action, key: key.to_owned(), request_id };
        match self.paced_checked(target, action, Some(held), call).await {
            Ok(receipt) => {
                calls.push(sent(receipt.request_id));
                Ok(())
            }
            Err(e) if e.code == LEASE_LOST => Err(e),
            Err(e) => {
                calls.push(sent(e.request_id.clone()));
                Err(e)
            }
        }
    }

    /// Sends `op` (the item's operation, or a step of a revert item) to the key; the calls sent go to `calls`.
    async fn effect(
        &self,
        held: Held<'_>,
        op: Operation,
        target: &AwsTarget,
        key: &str,
        policy: Option<&str>,
        calls: &mut Vec<CloudCall>,
    ) -> Result<(), CloudError> {
        let kms: &dyn AwsKms = target.via.client.as_ref();
        let action = op.cloud_action();
        match op {
            Operation::EnableKey => self.change(held, target, key, action, kms.enable_key(key), calls).await,
            Operation::DisableKey => self.change(held, target, key, action, kms.disable_key(key), calls).await,
            Operation::ScheduleKeyDeletion => {
                let days = held.item.params.days.unwrap_or(30) as i32;
                self.change(held, target, key, action, kms.schedule_key_deletion(key, days), calls).await
            }
            Operation::CancelKeyDeletion => {
                self.change(held, target, key, action, kms.cancel_key_deletion(key), calls).await
            }
            Operation::ApplyPolicyTemplate => {
                let policy = policy.unwrap_or_default();
                self.change(held, target, key, action, kms.put_key_policy(key, policy), calls).await?;
                let tag = template_tag(held.item);
                self.change(held, target, key, "TagResource", kms.tag_resource(key, &[tag]), calls).await
            }
            // Not an AWS operation: `process` never routes it here.
            Operation::DeleteKeyBackups => Err(CloudError::new(
                ErrorKind::Rejected,
                "UnsupportedOperation",
                "delete-key-backups is not an AWS operation",
            )),
        }
    }

    async fn template_policy(&self, item: &ClaimedItem) -> Result<String, EngineError> {
        let id = item
            .params
            .policy_template_id
            .ok_or_else(|| EngineError::Missing("job has no policy_template_id".into()))?;
        let t = self
            .store
            .get_template(id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("policy template {id} was deleted")))?;
        Ok(t.policy.to_string())
    }

    /// Is the key already where the operation would take it? Then nothing is sent: re-runs are safe and an
    /// item reclaimed after a crash does not repeat its effect.
    async fn already_done(
        &self,
        item: &ClaimedItem,
        meta: &KeyMetadata,
        target: &AwsTarget,
    ) -> Result<bool, CloudError> {
        match item.operation {
            // A first attempt just applies (PutKeyPolicy is idempotent); a repeated one checks first: the tag
            // is written after the policy, so its presence proves both happened.
            Operation::ApplyPolicyTemplate if item.attempts > 1 => {
                let (k, v) = template_tag(item);
                let tags =
                    self.paced(target, "ListResourceTags", target.via.client.list_resource_tags(&meta.key_id)).await?;
                Ok(tags.iter().any(|(tk, tv)| *tk == k && *tv == v))
            }
            Operation::ApplyPolicyTemplate => Ok(false),
            op => Ok(done_in_state(op, &meta.key_state)),
        }
    }

    /// Retry later, or fail for good: by the error's kind, the attempt count and the item's deadline.
    fn failure(&self, item: &ClaimedItem, target: &AwsTarget, err: CloudError, before: Option<String>) -> ItemResult {
        tracing::info!(
            bulkjob.id = %item.job_id, key.id = %item.key_id, partition = %item.partition,
            attempt = item.attempts, error.code = %err.code, "item attempt failed"
        );
        let refused = (err.kind == ErrorKind::Unauthorized)
            .then(|| (target.via.connection_id, target.via.connection_name.clone()));
        let outcome = match self.config.retry.verdict(&err, item.attempts, self.jitter()) {
            Verdict::RetryAfter(wait) => {
                let next = self.after(wait);
                let deadline =
                    item.first_attempt_at + chrono::Duration::from_std(self.config.item_deadline).unwrap_or_default();
                if next > deadline {
                    let spent = (self.now() - item.first_attempt_at).num_seconds();
                    ItemOutcome::Failed {
                        code: err.code,
                        message: format!("{} (gave up after {} attempts in {spent} s)", err.message, item.attempts),
                        state_before: before,
                    }
                } else {
                    ItemOutcome::Retry { code: err.code, message: err.message, not_before: next }
                }
            }
            Verdict::Fail => ItemOutcome::Failed { code: err.code, message: err.message, state_before: before },
        };
        ItemResult { refused_connection: refused, ..outcome.into() }
    }
}

/// An item and this node's lease on it, for the lease checks before its state-changing calls.
#[derive(Clone, Copy)]
struct Held<'a> {
    item: &'a ClaimedItem,
    lease: &'a ItemLease,
}

/// The code of the error a change answers when this node lost the item's lease before sending it.
const LEASE_LOST: &str = "LeaseLost";

fn lease_lost() -> CloudError {
    CloudError::new(
        ErrorKind::Transient,
        LEASE_LOST,
        "this node no longer holds the item (it was paused or cut off); nothing was sent",
    )
}

/// The cached key updated with what the cloud just told us, and the policy (and template tag) just put on it;
/// None when nothing changed.
fn refreshed(
    target: &AwsTarget,
    meta: &KeyMetadata,
    applied_policy: Option<(&str, Option<(String, String)>)>,
) -> Option<(KeyId, AwsKeyMaterial)> {
    let mut m = target.key.material.clone();
    m.key_state = meta.key_state.clone();
    m.enabled = meta.enabled;
    m.deletion_date = meta.deletion_date;
    m.description = meta.description.clone();
    if let Some((policy, tag)) = applied_policy {
        m.policy = policy.to_string();
        if let Some((k, v)) = tag {
            m.tags.retain(|(tk, _)| *tk != k);
            m.tags.push((k, v));
        }
    }
    (m != target.key.material).then_some((target.key.id, m))
}

fn success(
    before: Option<String>,
    after: Option<String>,
    refreshed_key: Option<(KeyId, AwsKeyMaterial)>,
) -> ItemResult {
    let outcome = ItemOutcome::Succeeded { detail: "Success".into(), state_before: before, state_after: after };
    ItemResult { refreshed_key, ..outcome.into() }
}

/// What a successful `op` (with the job's `days`) did to the key, as DescribeKey would now show it.
fn effect_result(
    op: Operation,
    days: Option<i64>,
    m: &AwsKeyMaterial,
    now: chrono::DateTime<chrono::Utc>,
) -> KeyMetadata {
    let mut meta = m.clone();
    match op {
        Operation::EnableKey => {
            meta.key_state = "Enabled".into();
            meta.enabled = true;
        }
        Operation::DisableKey => {
            meta.key_state = "Disabled".into();
            meta.enabled = false;
        }
        Operation::ScheduleKeyDeletion => {
            meta.key_state = "PendingDeletion".into();
            meta.enabled = false;
            meta.deletion_date = Some(now + chrono::Duration::days(days.unwrap_or(30)));
        }
        Operation::CancelKeyDeletion => {
            // AWS leaves a key whose deletion was cancelled Disabled.
            meta.key_state = "Disabled".into();
            meta.enabled = false;
            meta.deletion_date = None;
        }
        Operation::ApplyPolicyTemplate | Operation::DeleteKeyBackups => {}
    }
    meta
}

/// Are two key policies the same document? Compared as JSON (KMS may reformat what it was given), as text
/// when either is not JSON.
fn same_policy(a: &str, b: &str) -> bool {
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The tag `applypolicytemplate` leaves on a key: the template's id.
fn template_tag(item: &ClaimedItem) -> (String, String) {
    let id = item.params.policy_template_id.map(|t| t.to_string()).unwrap_or_default();
    (POLICY_TEMPLATE_TAG.to_string(), id)
}
