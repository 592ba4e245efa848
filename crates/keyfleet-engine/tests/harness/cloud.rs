//! AWS KMS and Azure Key Vault in memory, with seeded faults. Every call is recorded with its simulated
//! time: reads and changes for the pacing property, and each state-changing call on a key that had already
//! reached its job's target (the property "nothing is sent once the target is reached").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keyfleet_clouds::aws::{AliasEntry, Page};
use keyfleet_clouds::azure::{KeyBundle, KeyItem, Listing};
use keyfleet_clouds::{
    AwsCredentials, AwsKms, AwsKmsConnector, AzureCredentials, CloudError, ErrorKind, KeyMetadata, KeyVault,
    KeyVaultConnector, Receipt,
};
use keyfleet_core::Operation;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::gate::Gate;

/// How often each fault happens, per call.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub throttle: f64,
    pub transient: f64,
    /// The call hangs, then fails without having acted.
    pub timeout: f64,
    /// The cloud acts, but the reply is lost (the caller sees a timeout).
    pub lost_reply: f64,
}

#[derive(Debug, Clone)]
pub struct FakeKey {
    pub account: String,
    pub region: String,
    pub state: String,
    pub policy: String,
    pub tags: Vec<(String, String)>,
}

/// One call as the cloud received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub account: String,
    pub region: String,
    pub action: &'static str,
    pub key: String,
}

#[derive(Debug)]
pub struct World {
    pub keys: BTreeMap<String, FakeKey>,
    /// What the test's jobs want of each key: the check for calls after the target was reached.
    pub targets: BTreeMap<String, (Operation, String)>,
    pub calls: Vec<Call>,
    /// State-changing calls sent to a key already in its target state.
    pub late_changes: Vec<String>,
    pub faults: Faults,
    /// When the run started (for messages).
    pub t0: Instant,
    rng: StdRng,
}

impl World {
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            keys: BTreeMap::new(),
            targets: BTreeMap::new(),
            calls: Vec::new(),
            late_changes: Vec::new(),
            faults,
            t0: Instant::now(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_c10d),
        }
    }

    /// Is the key where its job wants it?
    pub fn reached(&self, key: &str) -> bool {
        let (Some(k), Some((op, template))) = (self.keys.get(key), self.targets.get(key)) else { return false };
        match op {
            Operation::EnableKey => k.state == "Enabled",
            Operation::DisableKey => k.state == "Disabled",
            Operation::ScheduleKeyDeletion => k.state == "PendingDeletion",
            Operation::CancelKeyDeletion => matches!(k.state.as_str(), "Enabled" | "Disabled"),
            Operation::ApplyPolicyTemplate => {
                k.tags.iter().any(|(t, v)| t == keyfleet_engine::POLICY_TEMPLATE_TAG && v == template)
            }
            Operation::DeleteKeyBackups => false,
        }
    }
}

pub type Shared = Arc<Mutex<World>>;

/// What a call does before and after acting.
enum Fate {
    Ok,
    Refused(CloudError),
    Hang(Duration),
    LostReply,
}

/// One call: recorded, checked, then delayed, refused or answered as its drawn fate says.
#[allow(clippy::too_many_arguments)]
async fn call<T>(
    world: &Shared,
    gate: &Gate,
    account: &str,
    region: &str,
    action: &'static str,
    key: &str,
    changes: bool,
    act: impl FnOnce(&mut World) -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    gate.cloud_call().await;
    let (latency, fate) = {
        let mut w = world.lock().unwrap();
        let at = Instant::now();
        w.calls.push(Call { at, account: account.into(), region: region.into(), action, key: key.into() });
        if changes && w.reached(key) {
            let line = format!("{action} on {key} at {:?} after its target was reached", at - w.t0);
            w.late_changes.push(line);
        }
        let f = w.faults;
        let latency = Duration::from_millis(w.rng.random_range(1..40));
        let roll: f64 = w.rng.random();
        let fate = if roll < f.throttle {
            Fate::Refused(CloudError::new(ErrorKind::Throttled, "ThrottlingException", "Rate exceeded"))
        } else if roll < f.throttle + f.transient {
            Fate::Refused(CloudError::new(ErrorKind::Transient, "KMSInternalException", "internal error"))
        } else if roll < f.throttle + f.transient + f.timeout {
            Fate::Hang(Duration::from_millis(w.rng.random_range(1_000..30_000)))
        } else if roll < f.throttle + f.transient + f.timeout + f.lost_reply {
            Fate::LostReply
        } else {
            Fate::Ok
        };
        (latency, fate)
    };
    tokio::time::sleep(latency).await;
    match fate {
        Fate::Ok => act(&mut world.lock().unwrap()),
        Fate::Refused(e) => Err(e),
        Fate::Hang(d) => {
            tokio::time::sleep(d).await;
            Err(timeout())
        }
        Fate::LostReply => {
            let _ = act(&mut world.lock().unwrap());
            tokio::time::sleep(latency).await;
            Err(timeout())
        }
    }
}

fn timeout() -> CloudError {
    CloudError::new(ErrorKind::Transient, "RequestTimeout", "no reply within the timeout")
}

fn not_found(key: &str) -> CloudError {
    CloudError::new(ErrorKind::NotFound, "NotFoundException", format!("key {key} does not exist"))
}

fn invalid(key: &str, state: &str) -> CloudError {
    CloudError::new(ErrorKind::InvalidState, "KMSInvalidStateException", format!("{key} is {state}"))
}

/// AWS KMS for one node: the connection's access key id names the account.
pub struct AwsConnector {
    pub world: Shared,
    pub gate: Arc<Gate>,
}

impl AwsKmsConnector for AwsConnector {
    fn connect(&self, credentials: &AwsCredentials, region: &str) -> Arc<dyn AwsKms> {
        Arc::new(Kms {
            world: self.world.clone(),
            gate: self.gate.clone(),
            account: credentials.access_key_id.clone(),
            region: region.to_string(),
        })
    }
}

struct Kms {
    world: Shared,
    gate: Arc<Gate>,
    account: String,
    region: String,
}

impl Kms {
    async fn on_key<T>(
        &self,
        action: &'static str,
        key: &str,
        changes: bool,
        act: impl FnOnce(&mut FakeKey) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let (account, region) = (self.account.clone(), self.region.clone());
        call(&self.world, &self.gate, &self.account, &self.region, action, key, changes, |w| {
            match w.keys.get_mut(key).filter(|k| k.account == account && k.region == region) {
                Some(k) => act(k),
                None => Err(not_found(key)),
            }
        })
        .await
    }

    async fn set_state(&self, action: &'static str, key: &str, from: &[&str], to: &str) -> Result<Receipt, CloudError> {
        self.on_key(action, key, true, |k| {
            if !from.contains(&k.state.as_str()) {
                return Err(invalid(key, &k.state));
            }
            k.state = to.to_string();
            Ok(Receipt::default())
        })
        .await
    }
}

#[async_trait]
impl AwsKms for Kms {
    async fn describe_key(&self, key: &str) -> Result<KeyMetadata, CloudError> {
        let account = self.account.clone();
        self.on_key("DescribeKey", key, false, |k| {
            Ok(KeyMetadata {
                key_id: key.to_string(),
                arn: format!("arn:aws:kms:{}:{account}:key/{key}", k.region),
                account_id: account,
                key_state: k.state.clone(),
                enabled: k.state == "Enabled",
                ..Default::default()
            })
        })
        .await
    }

    async fn enable_key(&self, key: &str) -> Result<Receipt, CloudError> {
        self.set_state("EnableKey", key, &["Enabled", "Disabled"], "Enabled").await
    }

    async fn disable_key(&self, key: &str) -> Result<Receipt, CloudError> {
        self.set_state("DisableKey", key, &["Enabled", "Disabled"], "Disabled").await
    }

    async fn schedule_key_deletion(&self, key: &str, _days: i32) -> Result<Receipt, CloudError> {
        self.set_state("ScheduleKeyDeletion", key, &["Enabled", "Disabled"], "PendingDeletion").await
    }

    async fn cancel_key_deletion(&self, key: &str) -> Result<Receipt, CloudError> {
        self.set_state("CancelKeyDeletion", key, &["PendingDeletion"], "Disabled").await
    }

    async fn get_key_policy(&self, key: &str) -> Result<String, CloudError> {
        self.on_key("GetKeyPolicy", key, false, |k| Ok(k.policy.clone())).await
    }

    async fn put_key_policy(&self, key: &str, policy: &str) -> Result<Receipt, CloudError> {
        self.on_key("PutKeyPolicy", key, true, |k| {
            k.policy = policy.to_string();
            Ok(Receipt::default())
        })
        .await
    }

    async fn tag_resource(&self, key: &str, tags: &[(String, String)]) -> Result<Receipt, CloudError> {
        self.on_key("TagResource", key, true, |k| {
            for (t, v) in tags {
                k.tags.retain(|(kt, _)| kt != t);
                k.tags.push((t.clone(), v.clone()));
            }
            Ok(Receipt::default())
        })
        .await
    }

    async fn list_resource_tags(&self, key: &str) -> Result<Vec<(String, String)>, CloudError> {
        self.on_key("ListResourceTags", key, false, |k| Ok(k.tags.clone())).await
    }

    async fn list_keys(&self, _marker: Option<String>, _limit: i32) -> Result<Page<String>, CloudError> {
        let (account, region) = (self.account.clone(), self.region.clone());
        call(&self.world, &self.gate, &self.account, &self.region, "ListKeys", "", false, |w| {
            let items = w.keys.iter().filter(|(_, k)| k.account == account && k.region == region);
            Ok(Page { items: items.map(|(id, _)| id.clone()).collect(), next_marker: None })
        })
        .await
    }

    async fn list_aliases(&self, _marker: Option<String>, _limit: i32) -> Result<Page<AliasEntry>, CloudError> {
        call(&self.world, &self.gate, &self.account, &self.region, "ListAliases", "", false, |_| {
            Ok(Page { items: vec![], next_marker: None })
        })
        .await
    }
}

/// Azure Key Vault for one node: vaults keyfleet has no keys in (the harness's Azure items are local
/// deletes of backups); every call is recorded and paced like any other.
pub struct VaultConnector {
    pub world: Shared,
    pub gate: Arc<Gate>,
}

impl KeyVaultConnector for VaultConnector {
    fn connect(&self, _credentials: &AzureCredentials, vault_url: &str) -> Arc<dyn KeyVault> {
        Arc::new(Vault { world: self.world.clone(), gate: self.gate.clone(), url: vault_url.to_string() })
    }
}

struct Vault {
    world: Shared,
    gate: Arc<Gate>,
    url: String,
}

impl Vault {
    async fn read<T>(&self, action: &'static str, name: &str, empty: T) -> Result<T, CloudError> {
        call(&self.world, &self.gate, "azure", &self.url, action, name, false, |_| Ok(empty)).await
    }
}

#[async_trait]
impl KeyVault for Vault {
    async fn list_keys(&self, _next_link: Option<&str>) -> Result<Listing<KeyItem>, CloudError> {
        self.read("ListKeys", "", Listing { items: vec![], next_link: None }).await
    }

    async fn list_key_versions(&self, name: &str, _next_link: Option<&str>) -> Result<Listing<KeyItem>, CloudError> {
        self.read("ListKeyVersions", name, Listing { items: vec![], next_link: None }).await
    }

    async fn get_key(&self, name: &str) -> Result<KeyBundle, CloudError> {
        self.read("GetKey", name, ()).await?;
        Err(CloudError::new(ErrorKind::NotFound, "KeyNotFound", format!("no key {name}")))
    }

    async fn backup_key(&self, name: &str) -> Result<Vec<u8>, CloudError> {
        self.read("BackupKey", name, ()).await?;
        Err(CloudError::new(ErrorKind::NotFound, "KeyNotFound", format!("no key {name}")))
    }

    async fn restore_key(&self, _backup: &[u8]) -> Result<KeyBundle, CloudError> {
        self.read("RestoreKey", "", ()).await?;
        Err(CloudError::new(ErrorKind::Rejected, "BadParameter", "the harness restores nothing"))
    }
}
