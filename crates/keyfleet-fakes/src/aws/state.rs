//! The key store: one [`Store`] of keys and aliases per (account, region), and AWS's key
//! state rules (which transitions are allowed, with which error otherwise).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::CallRecord;
use super::keyspec::Algorithms;
use super::paging::Markers;
use super::protocol::{ErrorCode, KmsError};
use super::stats::{FakeKmsStats, Stats};

/// One account in one region: AWS keeps separate key stores for each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    pub account: String,
    pub region: String,
}

impl Scope {
    pub(crate) fn new(account: &str, region: &str) -> Self {
        Self { account: account.to_owned(), region: region.to_owned() }
    }

    fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    fn arn(&self, resource: &str) -> String {
        format!("arn:{}:kms:{}:{}:{resource}", self.partition(), self.region, self.account)
    }

    pub(crate) fn key_arn(&self, key_id: &str) -> String {
        self.arn(&format!("key/{key_id}"))
    }

    /// `alias` includes its `alias/` prefix.
    pub(crate) fn alias_arn(&self, alias: &str) -> String {
        self.arn(alias)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::PendingDeletion => "PendingDeletion",
        }
    }
}

/// The policy AWS attaches to a key created without one.
pub(crate) fn default_policy(account: &str) -> String {
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{account}:root"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
    )
}

/// The settings of a key to create; everything is already validated.
#[derive(Debug, Clone)]
pub(crate) struct NewKey {
    pub description: String,
    pub key_usage: String,
    pub key_spec: String,
    pub algorithms: Algorithms,
    pub policy: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl NewKey {
    pub(crate) fn symmetric() -> Self {
        Self {
            description: String::new(),
            key_usage: super::keyspec::ENCRYPT_DECRYPT.to_owned(),
            key_spec: super::keyspec::SYMMETRIC_DEFAULT.to_owned(),
            algorithms: Algorithms { encryption: vec![super::keyspec::SYMMETRIC_DEFAULT], ..Algorithms::default() },
            policy: None,
            tags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub created: DateTime<Utc>,
    pub description: String,
    pub key_usage: String,
    pub key_spec: String,
    pub algorithms: Algorithms,
    pub state: KeyState,
    pub deletion_date: Option<DateTime<Utc>>,
    pub policy: String,
    pub tags: BTreeMap<String, String>,
}

impl Key {
    pub(crate) fn enabled(&self) -> bool {
        self.state == KeyState::Enabled
    }

    /// Most changes are refused while a key waits for deletion.
    pub(crate) fn refuse_if_pending_deletion(&self) -> Result<(), KmsError> {
        if self.state == KeyState::PendingDeletion {
            return Err(KmsError::invalid_state(format!("{} is pending deletion.", self.arn)));
        }
        Ok(())
    }

    /// Enabling an enabled key succeeds, as on AWS.
    pub(crate) fn enable(&mut self) -> Result<(), KmsError> {
        self.refuse_if_pending_deletion()?;
        self.state = KeyState::Enabled;
        Ok(())
    }

    /// Disabling a disabled key succeeds, as on AWS.
    pub(crate) fn disable(&mut self) -> Result<(), KmsError> {
        self.refuse_if_pending_deletion()?;
        self.state = KeyState::Disabled;
        Ok(())
    }

    /// `days` is already checked to be within AWS's 7–30.
    pub(crate) fn schedule_deletion(&mut self, days: i64, now: DateTime<Utc>) -> Result<DateTime<Utc>, KmsError> {
        self.refuse_if_pending_deletion()?;
        let deletion_date = now + Duration::days(days);
        self.state = KeyState::PendingDeletion;
        self.deletion_date = Some(deletion_date);
        Ok(deletion_date)
    }

    /// A cancelled deletion leaves the key disabled, as on AWS.
    pub(crate) fn cancel_deletion(&mut self) -> Result<(), KmsError> {
        if self.state != KeyState::PendingDeletion {
            return Err(KmsError::invalid_state(format!("{} is not pending deletion.", self.arn)));
        }
        self.state = KeyState::Disabled;
        self.deletion_date = None;
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Alias {
    pub name: String,
    pub target_key_id: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// Whether an operation's `KeyId` may name an alias. AWS accepts aliases only where its API
/// reference says so (DescribeKey); elsewhere a key id or key ARN is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refs {
    KeyOnly,
    KeyOrAlias,
}

enum KeyRef<'a> {
    Id(&'a str),
    /// With its `alias/` prefix.
    Alias(&'a str),
}

/// Keys and aliases of one account in one region.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// By creation order, which is ListKeys' stable order.
    keys: BTreeMap<u64, Key>,
    ordinal_by_id: HashMap<String, u64>,
    aliases: BTreeMap<String, Alias>,
    next_ordinal: u64,
}

impl Store {
    pub(crate) fn create_key(&mut self, scope: &Scope, new: NewKey, now: DateTime<Utc>) -> &Key {
        let id = uuid::Uuid::new_v4().to_string();
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        let key = Key {
            arn: scope.key_arn(&id),
            account: scope.account.clone(),
            id: id.clone(),
            created: now,
            description: new.description,
            key_usage: new.key_usage,
            key_spec: new.key_spec,
            algorithms: new.algorithms,
            state: KeyState::Enabled,
            deletion_date: None,
            policy: new.policy.unwrap_or_else(|| default_policy(&scope.account)),
            tags: new.tags.into_iter().collect(),
        };
        self.ordinal_by_id.insert(id, ordinal);
        self.keys.entry(ordinal).or_insert(key)
    }

    /// Removes a key and the aliases that point at it, as AWS does when a deletion completes.
    pub(crate) fn remove_key(&mut self, key_id: &str) -> bool {
        let Some(ordinal) = self.ordinal_by_id.remove(key_id) else {
            return false;
        };
        self.keys.remove(&ordinal);
        self.aliases.retain(|_, alias| alias.target_key_id != key_id);
        true
    }

    pub(crate) fn find(&self, scope: &Scope, key_ref: &str, refs: Refs) -> Result<&Key, KmsError> {
        let ordinal = self.locate(scope, key_ref, refs)?;
        self.keys.get(&ordinal).ok_or_else(KmsError::internal)
    }

    pub(crate) fn find_mut(&mut self, scope: &Scope, key_ref: &str, refs: Refs) -> Result<&mut Key, KmsError> {
        let ordinal = self.locate(scope, key_ref, refs)?;
        self.keys.get_mut(&ordinal).ok_or_else(KmsError::internal)
    }

    fn locate(&self, scope: &Scope, key_ref: &str, refs: Refs) -> Result<u64, KmsError> {
        let id = match parse_key_ref(scope, key_ref)? {
            KeyRef::Id(id) => id,
            KeyRef::Alias(alias) if refs == Refs::KeyOrAlias => {
                let alias = self.alias(scope, alias)?;
                alias.target_key_id.as_str()
            }
            KeyRef::Alias(_) => {
                return Err(KmsError::not_found(format!("Invalid keyId {key_ref}")));
            }
        };
        self.ordinal_by_id.get(id).copied().ok_or_else(|| {
            if is_key_id(id) {
                KmsError::not_found(format!("Key '{}' does not exist", scope.key_arn(id)))
            } else {
                KmsError::not_found(format!("Invalid keyId {key_ref}"))
            }
        })
    }

    /// Keys in ListKeys order, starting at creation ordinal `from`.
    pub(crate) fn keys_from(&self, from: u64) -> impl Iterator<Item = (u64, &Key)> {
        self.keys.range(from..).map(|(ordinal, key)| (*ordinal, key))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.values()
    }

    /// `name` includes its `alias/` prefix.
    pub(crate) fn alias(&self, scope: &Scope, name: &str) -> Result<&Alias, KmsError> {
        self.aliases
            .get(name)
            .ok_or_else(|| KmsError::not_found(format!("Alias {} is not found.", scope.alias_arn(name))))
    }

    /// Aliases in name order, starting at `from`.
    pub(crate) fn aliases_from<'a>(&'a self, from: &str) -> impl Iterator<Item = &'a Alias> {
        self.aliases.range(from.to_owned()..).map(|(_, alias)| alias)
    }

    pub(crate) fn create_alias(
        &mut self,
        scope: &Scope,
        name: &str,
        target_key_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), KmsError> {
        if self.aliases.contains_key(name) {
            return Err(KmsError::new(
                ErrorCode::AlreadyExists,
                format!("An alias with the name {} already exists", scope.alias_arn(name)),
            ));
        }
        self.aliases.insert(
            name.to_owned(),
            Alias { name: name.to_owned(), target_key_id: target_key_id.to_owned(), created: now, updated: now },
        );
        Ok(())
    }

    pub(crate) fn delete_alias(&mut self, scope: &Scope, name: &str) -> Result<Alias, KmsError> {
        self.alias(scope, name)?;
        self.aliases.remove(name).ok_or_else(KmsError::internal)
    }
}

/// Reads a key id, key ARN, alias name or alias ARN. An ARN of another account, region or
/// partition names nothing in this store.
fn parse_key_ref<'a>(scope: &Scope, raw: &'a str) -> Result<KeyRef<'a>, KmsError> {
    if raw.starts_with("alias/") {
        return Ok(KeyRef::Alias(raw));
    }
    if !raw.starts_with("arn:") {
        return Ok(KeyRef::Id(raw));
    }
    let invalid = || {
        KmsError::new(ErrorCode::InvalidArn, format!("The request was rejected because the ARN {raw} is not valid."))
    };
    let parts: Vec<&'a str> = raw.splitn(6, ':').collect();
    let [_, _partition, service, _region, _account, resource] = parts.as_slice() else {
        return Err(invalid());
    };
    if *service != "kms" {
        return Err(invalid());
    }
    let same_scope = raw.strip_suffix(resource) == Some(scope.arn("").as_str());
    if let Some(id) = resource.strip_prefix("key/") {
        if !same_scope {
            return Err(KmsError::not_found(format!("Key '{raw}' does not exist")));
        }
        Ok(KeyRef::Id(id))
    } else if resource.starts_with("alias/") {
        if !same_scope {
            return Err(KmsError::not_found(format!("Alias {raw} is not found.")));
        }
        Ok(KeyRef::Alias(resource))
    } else {
        Err(invalid())
    }
}

/// AWS key ids are lowercase UUIDs.
pub(crate) fn is_key_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A 12-digit account for an access key the fake was not configured with: stable across runs
/// (FNV-1a, not the std hasher, which is seeded per process) so demos and tests can predict it.
pub(crate) fn derived_account(access_key_id: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in access_key_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012}", hash % 1_000_000_000_000)
}

/// Everything the fake remembers.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub accounts: HashMap<String, String>,
    /// Access keys whose every call is refused as AWS refuses revoked credentials.
    pub refused: std::collections::HashSet<String>,
    pub stores: HashMap<Scope, Store>,
    pub markers: Markers,
    calls: Vec<CallRecord>,
    stats: Stats,
}

impl State {
    pub(crate) fn new(accounts: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { accounts: accounts.into_iter().collect(), ..Self::default() }
    }

    pub(crate) fn account_for(&self, access_key_id: &str) -> String {
        self.accounts.get(access_key_id).cloned().unwrap_or_else(|| derived_account(access_key_id))
    }

    /// The store of a scope, created empty on first use.
    pub(crate) fn store_mut(&mut self, scope: &Scope) -> &mut Store {
        self.stores.entry(scope.clone()).or_default()
    }

    pub(crate) fn store(&self, scope: &Scope) -> Option<&Store> {
        self.stores.get(scope)
    }

    /// Appends to the call log; `seq` starts at 1 so that `since=0` means "everything".
    pub(crate) fn record(&mut self, mut call: CallRecord) {
        call.seq = self.calls.len() as u64 + 1;
        self.stats.count(&call);
        self.calls.push(call);
    }

    pub(crate) fn stats(&self) -> FakeKmsStats {
        self.stats.snapshot()
    }

    pub(crate) fn calls_since(&self, since: u64) -> Vec<CallRecord> {
        // seq n lives at index n - 1.
        let start = usize::try_from(since).unwrap_or(usize::MAX);
        self.calls.get(start..).map(<[_]>::to_vec).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("111122223333", "us-east-1")
    }

    #[test]
    fn derived_accounts_are_stable_and_distinct() {
        let a = derived_account("AKIAOTHER");
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, derived_account("AKIAOTHER"));
        assert_ne!(a, derived_account("AKIAOTHER2"));
    }

    #[test]
    fn keys_resolve_by_id_arn_and_alias() {
        let scope = scope();
        let mut store = Store::default();
        let now = Utc::now();
        let id = store.create_key(&scope, NewKey::symmetric(), now).id.clone();
        store.create_alias(&scope, "alias/app", &id, now).unwrap();

        for key_ref in [id.clone(), scope.key_arn(&id), "alias/app".to_owned(), scope.alias_arn("alias/app")] {
            assert_eq!(store.find(&scope, &key_ref, Refs::KeyOrAlias).unwrap().id, id);
        }
        let alias_refused = store.find(&scope, "alias/app", Refs::KeyOnly).unwrap_err();
        assert_eq!(alias_refused.code, ErrorCode::NotFound);

        let other_region = Scope::new("111122223333", "eu-west-1").key_arn(&id);
        let err = store.find(&scope, &other_region, Refs::KeyOnly).unwrap_err();
        assert_eq!(err.message, format!("Key '{other_region}' does not exist"));

        let bad_arn = store.find(&scope, "arn:aws:kms:us-east-1:111122223333:thing", Refs::KeyOnly).unwrap_err();
        assert_eq!(bad_arn.code, ErrorCode::InvalidArn);
    }

    #[test]
    fn state_rules() {
        let scope = scope();
        let mut store = Store::default();
        let now = Utc::now();
        let id = store.create_key(&scope, NewKey::symmetric(), now).id.clone();
        let key = store.find_mut(&scope, &id, Refs::KeyOnly).unwrap();

        assert_eq!(key.cancel_deletion().unwrap_err().code, ErrorCode::KmsInvalidState);
        key.disable().unwrap();
        key.disable().unwrap();
        key.enable().unwrap();
        key.enable().unwrap();
        key.schedule_deletion(7, now).unwrap();
        assert!(!key.enabled());
        for err in [key.enable().unwrap_err(), key.disable().unwrap_err(), key.schedule_deletion(7, now).unwrap_err()] {
            assert_eq!(err.code, ErrorCode::KmsInvalidState);
            assert_eq!(err.message, format!("{} is pending deletion.", key.arn));
        }
        key.cancel_deletion().unwrap();
        assert_eq!(key.state, KeyState::Disabled);
        assert_eq!(key.deletion_date, None);
    }

    #[test]
    fn removing_a_key_removes_its_aliases() {
        let scope = scope();
        let mut store = Store::default();
        let now = Utc::now();
        let id = store.create_key(&scope, NewKey::symmetric(), now).id.clone();
        store.create_alias(&scope, "alias/gone", &id, now).unwrap();
        assert!(store.remove_key(&id));
        assert!(!store.remove_key(&id));
        assert_eq!(store.aliases_from("").count(), 0);
    }
}
