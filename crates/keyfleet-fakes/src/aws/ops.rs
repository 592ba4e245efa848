//! The KMS operations: each reads its input, checks AWS's constraints in AWS's words, applies
//! the state rules of [`super::state`] and shapes the output.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keyspec::{self, Algorithms};
use super::paging::Markers;
use super::protocol::{ErrorCode, KmsError, Reply, Violations, input};
use super::state::{Key, NewKey, Refs, Scope, Store};
use super::wire::{AliasListEntry, KeyMetadata, Tag, epoch};
use crate::common::take_page;

/// AWS's quota on the size of a key policy document.
const POLICY_QUOTA_BYTES: usize = 32 * 1024;
/// The longest policy the service model accepts at all (a `ValidationException` above).
const POLICY_MAX_LEN: usize = 131_072;
const TAGS_PER_KEY: usize = 50;
const KEY_ID_MAX_LEN: usize = 2048;
const MARKER_MAX_LEN: usize = 1024;
const ALIAS_PREFIX: &str = "alias/";
const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";

macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// The operations the fake serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Operation { $($op),* }

        impl Operation {
            pub(crate) fn from_name(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($op) => Some(Self::$op),)*
                    _ => None,
                }
            }

            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Self::$op => stringify!($op),)*
                }
            }
        }
    };
}

operations!(
    CreateKey,
    DescribeKey,
    ListKeys,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    GetKeyPolicy,
    PutKeyPolicy,
    TagResource,
    UntagResource,
    ListResourceTags,
    CreateAlias,
    DeleteAlias,
    ListAliases,
);

/// What an operation runs against.
pub(crate) struct Cx<'a> {
    pub scope: &'a Scope,
    pub now: DateTime<Utc>,
    pub markers: &'a Markers,
    /// The key the call named, once resolved: recorded in the call log.
    pub key_id: Option<String>,
}

impl Cx<'_> {
    fn find<'s>(&mut self, store: &'s Store, key_ref: &str, refs: Refs) -> Result<&'s Key, KmsError> {
        let key = store.find(self.scope, key_ref, refs)?;
        self.key_id = Some(key.id.clone());
        Ok(key)
    }

    fn find_mut<'s>(&mut self, store: &'s mut Store, key_ref: &str, refs: Refs) -> Result<&'s mut Key, KmsError> {
        let key = store.find_mut(self.scope, key_ref, refs)?;
        self.key_id = Some(key.id.clone());
        Ok(key)
    }

    /// Listing markers are only valid for the listing that issued them.
    fn listing(&self, operation: Operation, filter: &str) -> String {
        format!("{}:{}:{}:{filter}", operation.name(), self.scope.account, self.scope.region)
    }
}

pub(crate) fn dispatch(
    operation: Operation,
    cx: &mut Cx<'_>,
    store: &mut Store,
    body: Value,
) -> Result<Reply, KmsError> {
    use Operation as Op;
    match operation {
        Op::CreateKey => create_key(cx, store, input(body)?),
        Op::DescribeKey => describe_key(cx, store, input(body)?),
        Op::ListKeys => list_keys(cx, store, input(body)?),
        Op::EnableKey => change_key(cx, store, input(body)?, Key::enable),
        Op::DisableKey => change_key(cx, store, input(body)?, Key::disable),
        Op::ScheduleKeyDeletion => schedule_key_deletion(cx, store, input(body)?),
        Op::CancelKeyDeletion => cancel_key_deletion(cx, store, input(body)?),
        Op::GetKeyPolicy => get_key_policy(cx, store, input(body)?),
        Op::PutKeyPolicy => put_key_policy(cx, store, input(body)?),
        Op::TagResource => tag_resource(cx, store, input(body)?),
        Op::UntagResource => untag_resource(cx, store, input(body)?),
        Op::ListResourceTags => list_resource_tags(cx, store, input(body)?),
        Op::CreateAlias => create_alias(cx, store, input(body)?),
        Op::DeleteAlias => delete_alias(cx, store, input(body)?),
        Op::ListAliases => list_aliases(cx, store, input(body)?),
    }
}

// ---- keys ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyInput {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    customer_master_key_spec: Option<String>,
    key_spec: Option<String>,
    origin: Option<String>,
    custom_key_store_id: Option<String>,
    #[serde(rename = "BypassPolicyLockoutSafetyCheck")]
    _bypass_policy_lockout_safety_check: Option<bool>,
    tags: Option<Vec<TagInput>>,
    multi_region: Option<bool>,
    xks_key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadataOutput<'a> {
    key_metadata: KeyMetadata<'a>,
}

fn create_key(cx: &mut Cx<'_>, store: &mut Store, input: CreateKeyInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    v.length("policy", input.policy.as_deref(), 1, POLICY_MAX_LEN);
    v.length("description", input.description.as_deref(), 0, 8192);
    v.one_of("keyUsage", input.key_usage.as_deref(), keyspec::KEY_USAGES);
    v.one_of("keySpec", input.key_spec.as_deref(), keyspec::KEY_SPECS);
    v.one_of("customerMasterKeySpec", input.customer_master_key_spec.as_deref(), keyspec::CUSTOMER_MASTER_KEY_SPECS);
    v.one_of("origin", input.origin.as_deref(), keyspec::ORIGINS);
    v.length("customKeyStoreId", input.custom_key_store_id.as_deref(), 1, 64);
    v.length("xksKeyId", input.xks_key_id.as_deref(), 1, 128);
    check_tag_members(&mut v, input.tags.as_deref());
    v.finish()?;

    if input.key_spec.is_some() && input.customer_master_key_spec.is_some() {
        return Err(KmsError::validation(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
             CustomerMasterKeySpec is deprecated.",
        ));
    }
    let unsupported = |what: &str| {
        KmsError::new(ErrorCode::UnsupportedOperation, format!("{what} is not supported by the keyfleet fake KMS."))
    };
    if input.origin.as_deref().is_some_and(|o| o != "AWS_KMS") {
        return Err(unsupported("An Origin other than AWS_KMS"));
    }
    if input.custom_key_store_id.is_some() || input.xks_key_id.is_some() {
        return Err(unsupported("A custom key store"));
    }
    if input.multi_region == Some(true) {
        return Err(unsupported("A multi-Region key"));
    }
    let key_spec =
        input.key_spec.or(input.customer_master_key_spec).unwrap_or_else(|| keyspec::SYMMETRIC_DEFAULT.to_owned());
    let key_usage = input.key_usage.unwrap_or_else(|| keyspec::ENCRYPT_DECRYPT.to_owned());
    let algorithms: Algorithms = keyspec::algorithms(&key_spec, &key_usage).ok_or_else(|| {
        KmsError::validation(format!("KeyUsage {key_usage} is not compatible with KeySpec {key_spec}."))
    })?;
    if key_spec == "SM2" && !cx.scope.region.starts_with("cn-") {
        return Err(KmsError::new(ErrorCode::UnsupportedOperation, "KeySpec SM2 is only available in China Regions."));
    }
    if let Some(policy) = &input.policy {
        check_policy(policy)?;
    }
    let tags = tag_pairs(input.tags.unwrap_or_default())?;
    check_tag_quota(tags.len())?;

    let new = NewKey {
        description: input.description.unwrap_or_default(),
        key_usage,
        key_spec,
        algorithms,
        policy: input.policy,
        tags,
    };
    let key = store.create_key(cx.scope, new, cx.now);
    cx.key_id = Some(key.id.clone());
    Reply::json(&KeyMetadataOutput { key_metadata: KeyMetadata::of(key) })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdInput {
    key_id: Option<String>,
    #[serde(rename = "GrantTokens")]
    _grant_tokens: Option<Vec<String>>,
}

fn describe_key(cx: &mut Cx<'_>, store: &mut Store, input: KeyIdInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.finish()?;
    let key = cx.find(store, key_ref, Refs::KeyOrAlias)?;
    Reply::json(&KeyMetadataOutput { key_metadata: KeyMetadata::of(key) })
}

/// EnableKey and DisableKey: a state change with an empty answer.
fn change_key(
    cx: &mut Cx<'_>,
    store: &mut Store,
    input: KeyIdInput,
    change: fn(&mut Key) -> Result<(), KmsError>,
) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.finish()?;
    change(cx.find_mut(store, key_ref, Refs::KeyOnly)?)?;
    Ok(Reply::Empty)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
    #[serde(rename = "ResourceOwners")]
    _resource_owners: Option<Vec<String>>,
}

impl ListInput {
    /// Checks `Limit` (AWS's per-operation bounds) and `Marker`; returns the page size.
    fn check_paging(&self, v: &mut Violations, max: i64, default: usize) -> usize {
        v.range("limit", self.limit, 1, max);
        v.length("marker", self.marker.as_deref(), 1, MARKER_MAX_LEN);
        self.limit.and_then(|limit| usize::try_from(limit).ok()).unwrap_or(default)
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListOutput<T: Serialize> {
    #[serde(flatten)]
    items: T,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyListEntry<'a> {
    key_id: &'a str,
    key_arn: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Keys<'a> {
    keys: Vec<KeyListEntry<'a>>,
}

fn list_keys(cx: &mut Cx<'_>, store: &mut Store, input: ListInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let limit = input.check_paging(&mut v, 1000, 100);
    v.finish()?;
    let listing = cx.listing(Operation::ListKeys, "");
    let start = match &input.marker {
        Some(marker) => cx.markers.open(&listing, marker)?.parse::<u64>().map_err(|_| KmsError::internal())?,
        None => 0,
    };
    let (page, next) = take_page(store.keys_from(start), limit);
    Reply::json(&ListOutput {
        items: Keys { keys: page.into_iter().map(|key| KeyListEntry { key_id: &key.id, key_arn: &key.arn }).collect() },
        truncated: next.is_some(),
        next_marker: next.map(|ordinal| cx.markers.issue(&listing, &ordinal.to_string())),
    })
}

// ---- deletion ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleKeyDeletionInput {
    key_id: Option<String>,
    pending_window_in_days: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleKeyDeletionOutput<'a> {
    key_id: &'a str,
    deletion_date: f64,
    key_state: &'static str,
    pending_window_in_days: i64,
}

fn schedule_key_deletion(
    cx: &mut Cx<'_>,
    store: &mut Store,
    input: ScheduleKeyDeletionInput,
) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.range("pendingWindowInDays", input.pending_window_in_days, 7, 30);
    v.finish()?;
    let days = input.pending_window_in_days.unwrap_or(30);
    let now = cx.now;
    let key = cx.find_mut(store, key_ref, Refs::KeyOnly)?;
    let deletion_date = key.schedule_deletion(days, now)?;
    Reply::json(&ScheduleKeyDeletionOutput {
        key_id: &key.arn,
        deletion_date: epoch(deletion_date),
        key_state: key.state.as_str(),
        pending_window_in_days: days,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyArnOutput<'a> {
    key_id: &'a str,
}

fn cancel_key_deletion(cx: &mut Cx<'_>, store: &mut Store, input: KeyIdInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.finish()?;
    let key = cx.find_mut(store, key_ref, Refs::KeyOnly)?;
    key.cancel_deletion()?;
    Reply::json(&KeyArnOutput { key_id: &key.arn })
}

// ---- policy ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyInput {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    #[serde(rename = "BypassPolicyLockoutSafetyCheck")]
    _bypass_policy_lockout_safety_check: Option<bool>,
}

impl PolicyInput {
    fn check_policy_name(&self, v: &mut Violations) {
        let name = self.policy_name.as_deref();
        v.length("policyName", name, 1, 128);
        let word = name.is_none_or(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_'));
        v.pattern("policyName", name, word, "[\\w]+");
    }

    /// Only the policy named `default` exists.
    fn require_default_name(&self) -> Result<(), KmsError> {
        match self.policy_name.as_deref() {
            None | Some("default") => Ok(()),
            Some(_) => Err(KmsError::not_found("No such policy exists")),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetKeyPolicyOutput<'a> {
    policy: &'a str,
    policy_name: &'static str,
}

fn get_key_policy(cx: &mut Cx<'_>, store: &mut Store, input: PolicyInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    input.check_policy_name(&mut v);
    v.finish()?;
    let key = cx.find(store, key_ref, Refs::KeyOnly)?;
    input.require_default_name()?;
    Reply::json(&GetKeyPolicyOutput { policy: &key.policy, policy_name: "default" })
}

fn put_key_policy(cx: &mut Cx<'_>, store: &mut Store, input: PolicyInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    let policy = v.required("policy", input.policy.as_deref(), 1, POLICY_MAX_LEN);
    input.check_policy_name(&mut v);
    v.finish()?;
    let key = cx.find_mut(store, key_ref, Refs::KeyOnly)?;
    input.require_default_name()?;
    key.refuse_if_pending_deletion()?;
    check_policy(policy)?;
    policy.clone_into(&mut key.policy);
    Ok(Reply::Empty)
}

/// A key policy must be a JSON object within AWS's 32 KB quota. (AWS also checks the policy
/// grammar and the lockout safety rule; the fake does not.)
fn check_policy(policy: &str) -> Result<(), KmsError> {
    if policy.len() > POLICY_QUOTA_BYTES {
        return Err(KmsError::new(
            ErrorCode::LimitExceeded,
            format!("The key policy exceeds the quota of {POLICY_QUOTA_BYTES} bytes."),
        ));
    }
    match serde_json::from_str::<Value>(policy) {
        Ok(Value::Object(_)) => Ok(()),
        _ => Err(KmsError::new(
            ErrorCode::MalformedPolicyDocument,
            "The key policy is not a valid JSON policy document.",
        )),
    }
}

// ---- tags ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

fn check_tag_members(v: &mut Violations, tags: Option<&[TagInput]>) {
    for (i, tag) in tags.unwrap_or_default().iter().enumerate() {
        let n = i + 1;
        v.required(&format!("tags.{n}.member.tagKey"), tag.tag_key.as_deref(), 1, 128);
        v.required(&format!("tags.{n}.member.tagValue"), tag.tag_value.as_deref(), 0, 256);
    }
}

fn check_tag_key(key: &str) -> Result<(), KmsError> {
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(KmsError::new(
            ErrorCode::Tag,
            format!("Tag key '{key}' is not valid: the aws: prefix is reserved for AWS use."),
        ));
    }
    Ok(())
}

/// Tags after [`check_tag_members`]; a key repeated in one request keeps its last value.
fn tag_pairs(tags: Vec<TagInput>) -> Result<Vec<(String, String)>, KmsError> {
    tags.into_iter()
        .map(|tag| {
            let key = tag.tag_key.unwrap_or_default();
            check_tag_key(&key)?;
            Ok((key, tag.tag_value.unwrap_or_default()))
        })
        .collect()
}

fn check_tag_quota(count: usize) -> Result<(), KmsError> {
    if count > TAGS_PER_KEY {
        return Err(KmsError::new(
            ErrorCode::LimitExceeded,
            format!("A KMS key can have at most {TAGS_PER_KEY} tags."),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    key_id: Option<String>,
    tags: Option<Vec<TagInput>>,
}

fn tag_resource(cx: &mut Cx<'_>, store: &mut Store, input: TagResourceInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.not_null("tags", input.tags.as_ref());
    check_tag_members(&mut v, input.tags.as_deref());
    v.finish()?;
    let key = cx.find_mut(store, key_ref, Refs::KeyOnly)?;
    key.refuse_if_pending_deletion()?;
    let tags = tag_pairs(input.tags.unwrap_or_default())?;
    let mut merged = key.tags.clone();
    merged.extend(tags);
    check_tag_quota(merged.len())?;
    key.tags = merged;
    Ok(Reply::Empty)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    key_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

fn untag_resource(cx: &mut Cx<'_>, store: &mut Store, input: UntagResourceInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.not_null("tagKeys", input.tag_keys.as_ref());
    for (i, tag_key) in input.tag_keys.iter().flatten().enumerate() {
        v.length(&format!("tagKeys.{}.member", i + 1), Some(tag_key), 1, 128);
    }
    v.finish()?;
    let key = cx.find_mut(store, key_ref, Refs::KeyOnly)?;
    key.refuse_if_pending_deletion()?;
    let tag_keys = input.tag_keys.unwrap_or_default();
    for tag_key in &tag_keys {
        check_tag_key(tag_key)?;
    }
    for tag_key in &tag_keys {
        key.tags.remove(tag_key);
    }
    Ok(Reply::Empty)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tags {
    tags: Vec<Tag>,
}

fn list_resource_tags(cx: &mut Cx<'_>, store: &mut Store, input: ListInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let key_ref = v.required("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    let limit = input.check_paging(&mut v, 50, 50);
    v.finish()?;
    let key = cx.find(store, key_ref, Refs::KeyOnly)?;
    let listing = cx.listing(Operation::ListResourceTags, &key.id);
    let start = match &input.marker {
        Some(marker) => cx.markers.open(&listing, marker)?,
        None => String::new(),
    };
    let tags = key.tags.range(start..).map(|(k, v)| {
        let tag = Tag { tag_key: k.clone(), tag_value: v.clone() };
        (k.clone(), tag)
    });
    let (page, next) = take_page(tags, limit);
    Reply::json(&ListOutput {
        items: Tags { tags: page },
        truncated: next.is_some(),
        next_marker: next.map(|tag_key| cx.markers.issue(&listing, &tag_key)),
    })
}

// ---- aliases ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

/// The name checks shared by CreateAlias and DeleteAlias, in AWS's order.
fn check_alias_name(v: &mut Violations, name: Option<&str>) -> String {
    let name = v.required("aliasName", name, 1, 256);
    let chars_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-'));
    v.pattern("aliasName", Some(name), chars_ok, "^[a-zA-Z0-9:/_-]+$");
    name.to_owned()
}

fn check_alias_prefix(name: &str) -> Result<(), KmsError> {
    if !name.starts_with(ALIAS_PREFIX) || name.len() == ALIAS_PREFIX.len() {
        return Err(KmsError::validation("Invalid identifier"));
    }
    if name.starts_with(RESERVED_ALIAS_PREFIX) {
        return Err(KmsError::new(
            ErrorCode::NotAuthorized,
            format!("The alias prefix {RESERVED_ALIAS_PREFIX} is reserved for AWS managed keys."),
        ));
    }
    Ok(())
}

fn create_alias(cx: &mut Cx<'_>, store: &mut Store, input: AliasInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let name = check_alias_name(&mut v, input.alias_name.as_deref());
    let target = v.required("targetKeyId", input.target_key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    v.finish()?;
    check_alias_prefix(&name)?;
    if name.contains(':') {
        return Err(KmsError::validation(format!("{name} contains invalid characters for an alias")));
    }
    if target.starts_with(ALIAS_PREFIX) || (target.starts_with("arn:") && target.contains(":alias/")) {
        return Err(KmsError::validation("Aliases must refer to keys. Not aliases"));
    }
    let key = cx.find(store, target, Refs::KeyOnly)?;
    key.refuse_if_pending_deletion()?;
    let key_id = key.id.clone();
    store.create_alias(cx.scope, &name, &key_id, cx.now)?;
    Ok(Reply::Empty)
}

fn delete_alias(cx: &mut Cx<'_>, store: &mut Store, input: AliasInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    let name = check_alias_name(&mut v, input.alias_name.as_deref());
    v.finish()?;
    check_alias_prefix(&name)?;
    let alias = store.delete_alias(cx.scope, &name)?;
    cx.key_id = Some(alias.target_key_id);
    Ok(Reply::Empty)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Aliases {
    aliases: Vec<AliasListEntry>,
}

fn list_aliases(cx: &mut Cx<'_>, store: &mut Store, input: ListInput) -> Result<Reply, KmsError> {
    let mut v = Violations::default();
    v.length("keyId", input.key_id.as_deref(), 1, KEY_ID_MAX_LEN);
    let limit = input.check_paging(&mut v, 100, 50);
    v.finish()?;
    let filter = match &input.key_id {
        Some(key_ref) => Some(cx.find(store, key_ref, Refs::KeyOnly)?.id.clone()),
        None => None,
    };
    let listing = cx.listing(Operation::ListAliases, filter.as_deref().unwrap_or(""));
    let start = match &input.marker {
        Some(marker) => cx.markers.open(&listing, marker)?,
        None => String::new(),
    };
    let aliases = store
        .aliases_from(&start)
        .filter(|alias| filter.as_ref().is_none_or(|id| alias.target_key_id == *id))
        .map(|alias| (alias.name.clone(), AliasListEntry::of(cx.scope, alias)));
    let (page, next) = take_page(aliases, limit);
    Reply::json(&ListOutput {
        items: Aliases { aliases: page },
        truncated: next.is_some(),
        next_marker: next.map(|name| cx.markers.issue(&listing, &name)),
    })
}
