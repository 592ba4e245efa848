//! What every cloud does for the engine, so the worker, the sync loop and the pacer never name a cloud:
//! run one attempt at one bulk-job item, list and run the targets of a key synchronization job, and know its
//! own request quotas. Each cloud is one folder (`aws/`, `azure/`) implementing [`Cloud`]; a new cloud is a
//! new folder and one line in [`CLOUDS`].

use async_trait::async_trait;
use futures::future::BoxFuture;
use keyfleet_core::*;
use keyfleet_store::CloudCall;

use crate::aws::resolve::AwsTarget;
use crate::worker::ItemLease;
use crate::{Engine, EngineError};

/// What one item needs to run, read for all the items of a claim at once ([`Cloud::prepare`]).
pub(crate) enum Target {
    /// An AWS key and its route to a client, or what is gone (the key, its container, its connection).
    Aws(Result<Box<AwsTarget>, String>),
    /// Azure `delete-key-backups`: whether the backup is still stored.
    Backup { stored: bool },
}

impl Target {
    /// The connection whose credentials the item's calls use, where the cloud may refuse them (AWS).
    pub fn connection(&self) -> Option<ConnectionId> {
        match self {
            Target::Aws(Ok(t)) => Some(t.via.connection_id),
            _ => None,
        }
    }

    /// Whether running the item may send a cloud call. Items that never do (an Azure backup deletion) are
    /// claimed in large batches ([`crate::worker`]): with nothing sent, a batch waiting for its turn cannot
    /// resend a change, and the item's lease still fences its record.
    pub fn calls_cloud(&self) -> bool {
        !matches!(self, Target::Backup { .. })
    }
}

/// How an attempt ended, and what else the item's record changes in the same transaction.
pub(crate) struct ItemResult {
    pub outcome: ItemOutcome,
    /// The key's connection had its credentials refused: the job's other items of that connection are
    /// failed without calls.
    pub refused_connection: Option<(ConnectionId, String)>,
    /// The cached key as the cloud now has it, written in the same transaction as the outcome.
    pub refreshed_key: Option<(KeyId, AwsKeyMaterial)>,
    /// `delete-key-backups`: the backup to delete in the same transaction as a successful outcome.
    pub deleted_backup: Option<BackupId>,
    /// The state-changing calls this attempt sent, in order (each audited with the outcome).
    pub cloud_calls: Vec<CloudCall>,
    /// `applypolicytemplate`: the key policy the template replaced, kept for a revert.
    pub policy_before: Option<String>,
}

impl From<ItemOutcome> for ItemResult {
    fn from(outcome: ItemOutcome) -> Self {
        ItemResult {
            outcome,
            refused_connection: None,
            refreshed_key: None,
            deleted_backup: None,
            cloud_calls: Vec::new(),
            policy_before: None,
        }
    }
}

/// One target of a sync job (an AWS account/region, an Azure vault): its label in `detailed_status` and
/// the (lazy) run that synchronizes it and returns the label's text. A cloud failure is the target's
/// result; only a store failure is an `Err` (the job's run ends and resumes later).
pub(crate) struct SyncStep<'a> {
    pub label: String,
    pub run: BoxFuture<'a, Result<String, EngineError>>,
}

#[async_trait]
pub(crate) trait Cloud: Send + Sync {
    /// The cloud's name in jobs ([`CLOUD_AWS`], [`CLOUD_AZURE`]).
    fn id(&self) -> &'static str;

    /// What `items` (of this cloud, from one claim) need to run, read together: one entry per item, in order.
    async fn prepare(&self, engine: &Engine, items: &[&ClaimedItem]) -> Result<Vec<Target>, EngineError>;

    /// One attempt at one item of a bulk job of this cloud, with what [`Cloud::prepare`] read for it and this
    /// node's lease on it.
    async fn run_item(
        &self,
        engine: &Engine,
        item: &ClaimedItem,
        target: Target,
        lease: &ItemLease,
    ) -> Result<ItemResult, EngineError>;

    /// The targets a sync job of this cloud covers, in a stable order.
    async fn sync_steps<'a>(
        &self,
        engine: &'a Engine,
        job: &'a SyncJobRecord,
    ) -> Result<Vec<SyncStep<'a>>, EngineError>;

    /// The cloud's default quota (requests per second) for an action it paces, None for other actions.
    fn default_rate(&self, action: &str) -> Option<f64>;
}

/// Every cloud the engine knows.
pub(crate) const CLOUDS: &[&dyn Cloud] = &[&crate::aws::Aws, &crate::azure::Azure];

/// The cloud of a job (by its name); unknown names are AWS's, as jobs from before clouds were named are.
pub(crate) fn cloud(id: &str) -> &'static dyn Cloud {
    CLOUDS.iter().copied().find(|c| c.id() == id).unwrap_or(CLOUDS[0])
}
