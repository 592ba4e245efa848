//! AWS connections, KMS containers and their ACLs, synced keys and policy templates.

use keyfleet_api_types::aws::{AwsConnectionRequest, AwsKeyQuery, KmsRequest, TemplateRequest};
use keyfleet_api_types::common::UpdateAclsRequest;
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::validate::{aws_key_state, check_name, check_url, parse_bool, require};
use crate::{Caller, Result, ServiceError, Services};

const AWS_CLOUDS: &[&str] = &["aws", "aws-us-gov", "aws-cn"];

/// A KMS container as its view shows it: the record, its ACL, and its connection's name.
pub type KmsEntry = (KmsRecord, Vec<AclEntry>, String);
/// A policy template and the name of its KMS container, if it names one.
pub type TemplateEntry = (TemplateRecord, Option<String>);

pub fn check_region(field: &str, region: &str) -> Result<()> {
    // e.g. us-east-1, eu-central-2, us-gov-west-1
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if ok { Ok(()) } else { Err(ServiceError::invalid(field, format!("{region:?} is not an AWS region name"))) }
}

/// Quota overrides: known KMS actions, positive finite rates.
fn check_quotas(q: Option<std::collections::BTreeMap<String, f64>>) -> Result<std::collections::BTreeMap<String, f64>> {
    const ACTIONS: &[&str] = &[
        "EnableKey",
        "DisableKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "PutKeyPolicy",
        "TagResource",
        "DescribeKey",
        "GetKeyPolicy",
        "ListResourceTags",
        "ListKeys",
        "ListAliases",
    ];
    let q = q.unwrap_or_default();
    for (action, rate) in &q {
        let field = format!("quotas.{action}");
        if !ACTIONS.contains(&action.as_str()) {
            return Err(ServiceError::invalid(&field, format!("unknown KMS action; one of {}", ACTIONS.join(", "))));
        }
        if !rate.is_finite() || *rate <= 0.0 || *rate > 100_000.0 {
            return Err(ServiceError::invalid(&field, "must be a rate in requests/s above 0"));
        }
    }
    Ok(q)
}

impl Services {
    // --- connections -------------------------------------------------------------------------------

    pub async fn create_aws_connection(
        &self,
        caller: &Caller,
        req: AwsConnectionRequest,
    ) -> Result<AwsConnectionRecord> {
        caller.require_cckm_admin()?;
        let name = require("name", req.name)?;
        check_name("name", &name)?;
        let access_key_id = require("access_key_id", req.access_key_id)?;
        let secret = require("secret_access_key", req.secret_access_key)?;
        let aws_region = req.aws_region.unwrap_or_else(|| "us-east-1".into());
        check_region("aws_region", &aws_region)?;
        let cloud_name = req.cloud_name.unwrap_or_else(|| "aws".into());
        if !AWS_CLOUDS.contains(&cloud_name.as_str()) {
            return Err(ServiceError::invalid("cloud_name", format!("must be one of {}", AWS_CLOUDS.join(", "))));
        }
        if let Some(u) = &req.endpoint_url {
            check_url("endpoint_url", u)?;
        }
        let id = ConnectionId::new();
        let at = now();
        let record = AwsConnectionRecord {
            id,
            name,
            description: req.description.unwrap_or_default(),
            access_key_id,
            secret_enc: self.master.encrypt(secret.as_bytes(), &id.secret_aad())?,
            aws_region,
            assume_role_arn: req.assume_role_arn,
            assume_role_external_id: req.assume_role_external_id,
            endpoint_url: req.endpoint_url,
            cloud_name,
            created_at: at,
            updated_at: at,
        };
        if self.store.azure_connection_by_name(&record.name).await?.is_some() {
            return Err(ServiceError::Conflict(format!("a connection named {} already exists", record.name)));
        }
        self.store.insert_aws_connection(&record).await?;
        tracing::info!(connection.id = %record.id, connection.name = %record.name, "AWS connection created");
        Ok(record)
    }

    /// By id or by name, as CCKM accepts both.
    pub async fn find_aws_connection(&self, id_or_name: &str) -> Result<Option<AwsConnectionRecord>> {
        if let Ok(id) = id_or_name.parse::<ConnectionId>()
            && let Some(c) = self.store.get_aws_connection(id).await?
        {
            return Ok(Some(c));
        }
        Ok(self.store.aws_connection_by_name(id_or_name).await?)
    }

    pub async fn get_aws_connection(&self, caller: &Caller, id: &str) -> Result<AwsConnectionRecord> {
        caller.require_cckm_admin()?;
        self.find_aws_connection(id).await?.ok_or_else(|| ServiceError::not_found("connection", id))
    }

    pub async fn update_aws_connection(
        &self,
        caller: &Caller,
        id: &str,
        req: AwsConnectionRequest,
    ) -> Result<AwsConnectionRecord> {
        let mut c = self.get_aws_connection(caller, id).await?;
        if let Some(name) = req.name {
            check_name("name", &name)?;
            c.name = name;
        }
        if let Some(d) = req.description {
            c.description = d;
        }
        if let Some(a) = req.access_key_id {
            c.access_key_id = require("access_key_id", Some(a))?;
        }
        if let Some(s) = req.secret_access_key {
            let s = require("secret_access_key", Some(s))?;
            c.secret_enc = self.master.encrypt(s.as_bytes(), &c.id.secret_aad())?;
        }
        if let Some(r) = req.aws_region {
            check_region("aws_region", &r)?;
            c.aws_region = r;
        }
        if let Some(u) = req.endpoint_url {
            if u.is_empty() {
                c.endpoint_url = None;
            } else {
                check_url("endpoint_url", &u)?;
                c.endpoint_url = Some(u);
            }
        }
        if req.assume_role_arn.is_some() {
            c.assume_role_arn = req.assume_role_arn.filter(|s| !s.is_empty());
        }
        if req.assume_role_external_id.is_some() {
            c.assume_role_external_id = req.assume_role_external_id.filter(|s| !s.is_empty());
        }
        c.updated_at = now();
        self.store.update_aws_connection(&c).await?;
        Ok(c)
    }

    pub async fn list_aws_connections(&self, caller: &Caller, page: &Page) -> Result<(Vec<AwsConnectionRecord>, u64)> {
        caller.require_cckm_admin()?;
        Ok(self.store.list_aws_connections(page).await?)
    }

    pub async fn delete_aws_connection(&self, caller: &Caller, id: &str) -> Result<()> {
        let c = self.get_aws_connection(caller, id).await?;
        self.store
            .delete_aws_connection(c.id)
            .await
            .map_err(|_| ServiceError::Conflict(format!("connection {} is still used by a KMS container", c.name)))?;
        Ok(())
    }

    // --- KMS containers ----------------------------------------------------------------------------

    pub async fn create_kms(&self, caller: &Caller, req: KmsRequest) -> Result<KmsEntry> {
        caller.require_cckm_admin()?;
        let name = require("name", req.name)?;
        check_name("name", &name)?;
        let account_id = require("account_id", req.account_id)?;
        if account_id.len() != 12 || !account_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ServiceError::invalid("account_id", "must be a 12-digit AWS account id"));
        }
        let conn_ref = require("connection", req.connection)?;
        let conn = self
            .find_aws_connection(&conn_ref)
            .await?
            .ok_or_else(|| ServiceError::invalid("connection", format!("no AWS connection {conn_ref:?}")))?;
        let regions = req.regions.unwrap_or_default();
        if regions.is_empty() {
            return Err(ServiceError::invalid("regions", "at least one region is required"));
        }
        for r in &regions {
            check_region("regions", r)?;
        }
        let mut regions_sorted = regions.clone();
        regions_sorted.dedup();
        let at = now();
        let quotas = check_quotas(req.quotas)?;
        let k = KmsRecord {
            id: KmsId::new(),
            name,
            account_id,
            connection_id: conn.id,
            regions: regions_sorted,
            quotas,
            created_at: at,
            updated_at: at,
        };
        self.store.insert_kms(&k).await?;
        self.kms_entry((k, Vec::new())).await
    }

    pub async fn find_kms(&self, id_or_name: &str) -> Result<Option<KmsRecord>> {
        if let Ok(id) = id_or_name.parse::<KmsId>()
            && let Some(k) = self.store.get_kms(id).await?
        {
            return Ok(Some(k));
        }
        Ok(self.store.kms_by_name(id_or_name).await?)
    }

    pub async fn get_kms(&self, caller: &Caller, id: &str) -> Result<KmsEntry> {
        let k = self.kms_with_acls(caller, id).await?;
        self.kms_entry(k).await
    }

    /// What a container's view shows beside the record: its ACL and its connection's name.
    async fn kms_entry(&self, (k, acls): (KmsRecord, Vec<AclEntry>)) -> Result<KmsEntry> {
        let conn = self.store.get_aws_connection(k.connection_id).await.ok().flatten().map(|c| c.name);
        Ok((k, acls, conn.unwrap_or_default()))
    }

    async fn kms_with_acls(&self, caller: &Caller, id: &str) -> Result<(KmsRecord, Vec<AclEntry>)> {
        caller.require_cckm_user()?;
        let k = self.find_kms(id).await?.ok_or_else(|| ServiceError::not_found("KMS container", id))?;
        let acls = self.store.acls(AclResource::AwsKms(k.id)).await?;
        Ok((k, acls))
    }

    pub async fn list_kms(&self, caller: &Caller, page: &Page) -> Result<(Vec<KmsEntry>, u64)> {
        caller.require_cckm_user()?;
        let (list, total) = self.store.list_kms(page).await?;
        let mut out = Vec::with_capacity(list.len());
        for k in list {
            let acls = self.store.acls(AclResource::AwsKms(k.id)).await?;
            out.push(self.kms_entry((k, acls)).await?);
        }
        Ok((out, total))
    }

    pub async fn update_kms(&self, caller: &Caller, id: &str, req: KmsRequest) -> Result<KmsEntry> {
        caller.require_cckm_admin()?;
        let (mut k, acls) = self.kms_with_acls(caller, id).await?;
        if let Some(name) = req.name {
            check_name("name", &name)?;
            k.name = name;
        }
        if let Some(conn_ref) = req.connection {
            let conn = self
                .find_aws_connection(&conn_ref)
                .await?
                .ok_or_else(|| ServiceError::invalid("connection", format!("no AWS connection {conn_ref:?}")))?;
            k.connection_id = conn.id;
        }
        if let Some(regions) = req.regions {
            if regions.is_empty() {
                return Err(ServiceError::invalid("regions", "at least one region is required"));
            }
            for r in &regions {
                check_region("regions", r)?;
            }
            k.regions = regions;
        }
        if req.account_id.is_some() {
            return Err(ServiceError::invalid("account_id", "cannot be changed; create a new container"));
        }
        if req.quotas.is_some() {
            k.quotas = check_quotas(req.quotas)?;
        }
        k.updated_at = now();
        self.store.update_kms(&k).await?;
        self.kms_entry((k, acls)).await
    }

    pub async fn delete_kms(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require_cckm_admin()?;
        let (k, _) = self.kms_with_acls(caller, id).await?;
        self.store.delete_kms(k.id).await?;
        Ok(())
    }

    /// `POST /v1/cckm/aws/kms/{id}/update-acls`: grants (`permit: true`) or revokes actions.
    pub async fn update_kms_acls(&self, caller: &Caller, id: &str, req: UpdateAclsRequest) -> Result<KmsEntry> {
        caller.require_cckm_admin()?;
        let (k, _) = self.kms_with_acls(caller, id).await?;
        let acls = self.apply_acl_changes(AclResource::AwsKms(k.id), req).await?;
        self.kms_entry((k, acls)).await
    }

    // --- keys ------------------------------------------------------------------------------------------

    pub async fn list_aws_keys(
        &self,
        caller: &Caller,
        q: AwsKeyQuery,
        page: &Page,
    ) -> Result<(Vec<(AwsKeyRecord, String)>, u64)> {
        caller.require_cckm_user()?;
        let mut filter = AwsKeyFilter::default();
        if let Some(k) = q.kms.as_deref().or(q.kms_id.as_deref()) {
            let field = if q.kms.is_some() { "kms" } else { "kms_id" };
            let kms = self
                .find_kms(k)
                .await?
                .ok_or_else(|| ServiceError::invalid(field, format!("no KMS container {k:?}")))?;
            filter.kms_id = Some(kms.id);
        }
        filter.region = q.region;
        filter.aws_key_id = q.keyid;
        filter.arn = q.arn;
        filter.alias = q.alias.map(|a| if a.starts_with("alias/") { a } else { format!("alias/{a}") });
        filter.key_state =
            q.keystate.as_deref().filter(|s| !s.is_empty()).map(|s| aws_key_state("keystate", s)).transpose()?;
        filter.enabled = q.enabled.as_deref().map(|v| parse_bool("enabled", v)).transpose()?;
        filter.gone = q.gone.as_deref().map(|v| parse_bool("gone", v)).transpose()?;
        for t in q.tags.as_deref().unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match t.split_once('=') {
                Some((k, v)) => filter.tags.push((k.to_string(), Some(v.to_string()))),
                None => filter.tags.push((t.to_string(), None)),
            }
        }
        let (keys, total) = self.store.list_aws_keys(&filter, page).await?;
        let names = self.kms_names(keys.iter().map(|k| k.kms_id)).await?;
        Ok((
            keys.into_iter()
                .map(|k| {
                    let n = names.get(&k.kms_id).cloned().unwrap_or_default();
                    (k, n)
                })
                .collect(),
            total,
        ))
    }

    pub async fn get_aws_key(&self, caller: &Caller, id: &str) -> Result<(AwsKeyRecord, String)> {
        caller.require_cckm_user()?;
        let kid: KeyId = id.parse().map_err(|_| ServiceError::not_found("key", id))?;
        let key = self.store.get_aws_key(kid).await?.ok_or_else(|| ServiceError::not_found("key", id))?;
        let name = self.store.get_kms(key.kms_id).await?.map(|k| k.name).unwrap_or_default();
        Ok((key, name))
    }

    async fn kms_names(&self, ids: impl Iterator<Item = KmsId>) -> Result<std::collections::HashMap<KmsId, String>> {
        let mut names = std::collections::HashMap::new();
        for id in ids {
            if let std::collections::hash_map::Entry::Vacant(e) = names.entry(id) {
                e.insert(self.store.get_kms(id).await?.map(|k| k.name).unwrap_or_default());
            }
        }
        Ok(names)
    }

    // --- policy templates ------------------------------------------------------------------------------

    pub async fn create_template(&self, caller: &Caller, req: TemplateRequest) -> Result<TemplateEntry> {
        caller.require_cckm_admin()?;
        let name = require("name", req.name.clone())?;
        check_name("name", &name)?;
        let (kms_id, account_id) = self.template_owner(req.kms.clone(), req.account_id.clone()).await?;
        let at = now();
        let mut t = TemplateRecord {
            id: TemplateId::new(),
            name,
            kms_id,
            account_id,
            policy: serde_json::Value::Null,
            key_admins: vec![],
            key_users: vec![],
            key_admins_roles: vec![],
            key_users_roles: vec![],
            is_verified: false,
            created_at: at,
            updated_at: at,
        };
        apply_policy_fields(&mut t, &req)?;
        self.store.insert_template(&t).await?;
        Ok(self.template_entry(t).await)
    }

    async fn template_owner(&self, kms: Option<String>, account_id: Option<String>) -> Result<(Option<KmsId>, String)> {
        match (kms, account_id) {
            (Some(k), _) => {
                let kms = self
                    .find_kms(&k)
                    .await?
                    .ok_or_else(|| ServiceError::invalid("kms", format!("no KMS container {k:?}")))?;
                Ok((Some(kms.id), kms.account_id))
            }
            (None, Some(a)) if a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()) => Ok((None, a)),
            (None, Some(_)) => Err(ServiceError::invalid("account_id", "must be a 12-digit AWS account id")),
            (None, None) => Err(ServiceError::invalid("kms", "kms or account_id is required")),
        }
    }

    pub async fn get_template(&self, caller: &Caller, id: &str) -> Result<TemplateEntry> {
        let t = self.readable_template(caller, id).await?;
        Ok(self.template_entry(t).await)
    }

    /// A template and the name of the container it belongs to, if any.
    async fn template_entry(&self, t: TemplateRecord) -> TemplateEntry {
        let name = match t.kms_id {
            Some(id) => self.store.get_kms(id).await.ok().flatten().map(|k| k.name),
            None => None,
        };
        (t, name)
    }

    async fn readable_template(&self, caller: &Caller, id: &str) -> Result<TemplateRecord> {
        caller.require_cckm_user()?;
        let tid: TemplateId = id.parse().map_err(|_| ServiceError::not_found("policy template", id))?;
        self.store.get_template(tid).await?.ok_or_else(|| ServiceError::not_found("policy template", id))
    }

    pub async fn update_template(&self, caller: &Caller, id: &str, req: TemplateRequest) -> Result<TemplateEntry> {
        caller.require_cckm_admin()?;
        let mut t = self.readable_template(caller, id).await?;
        if let Some(name) = &req.name {
            check_name("name", name)?;
            t.name = name.clone();
        }
        if req.kms.is_some() || req.account_id.is_some() {
            let (kms_id, account) = self.template_owner(req.kms.clone(), req.account_id.clone()).await?;
            t.kms_id = kms_id;
            t.account_id = account;
        }
        if req.policy.is_some() || req.key_admins.is_some() || req.key_users.is_some() {
            apply_policy_fields(&mut t, &req)?;
        }
        t.updated_at = now();
        self.store.update_template(&t).await?;
        Ok(self.template_entry(t).await)
    }

    pub async fn list_templates(&self, caller: &Caller, page: &Page) -> Result<(Vec<TemplateEntry>, u64)> {
        caller.require_cckm_user()?;
        let (list, total) = self.store.list_templates(page).await?;
        let mut out = Vec::with_capacity(list.len());
        for t in list {
            out.push(self.template_entry(t).await);
        }
        Ok((out, total))
    }

    pub async fn delete_template(&self, caller: &Caller, id: &str) -> Result<()> {
        let t = self.readable_template(caller, id).await?;
        caller.require_cckm_admin()?;
        self.store.delete_template(t.id).await?;
        Ok(())
    }
}

/// `policy` (a JSON object, or a string holding one) and the `key_admins`/`key_users` lists are mutually
/// exclusive; from the lists a policy is built as CCKM does (root account, admins, users).
fn apply_policy_fields(t: &mut TemplateRecord, req: &TemplateRequest) -> Result<()> {
    let lists = req.key_admins.is_some()
        || req.key_users.is_some()
        || req.key_admins_roles.is_some()
        || req.key_users_roles.is_some();
    match (&req.policy, lists) {
        (Some(_), true) => Err(ServiceError::invalid("policy", "cannot be combined with key_admins/key_users")),
        (Some(p), false) => {
            let doc = match p {
                serde_json::Value::String(s) => serde_json::from_str::<serde_json::Value>(s)
                    .map_err(|e| ServiceError::invalid("policy", format!("is not valid JSON: {e}")))?,
                other => other.clone(),
            };
            if !doc.is_object() {
                return Err(ServiceError::invalid("policy", "must be a JSON object"));
            }
            if doc.to_string().len() > 32768 {
                return Err(ServiceError::invalid("policy", "exceeds AWS's 32768-character limit"));
            }
            t.policy = doc;
            t.key_admins.clear();
            t.key_users.clear();
            Ok(())
        }
        (None, true) => {
            t.key_admins = req.key_admins.clone().unwrap_or_default();
            t.key_users = req.key_users.clone().unwrap_or_default();
            t.key_admins_roles = req.key_admins_roles.clone().unwrap_or_default();
            t.key_users_roles = req.key_users_roles.clone().unwrap_or_default();
            t.policy = built_policy(t);
            Ok(())
        }
        (None, false) => Err(ServiceError::invalid("policy", "policy or key_admins/key_users is required")),
    }
}

fn built_policy(t: &TemplateRecord) -> serde_json::Value {
    let acct = &t.account_id;
    let principals = |users: &[String], roles: &[String]| -> Vec<String> {
        users
            .iter()
            .map(|u| format!("arn:aws:iam::{acct}:user/{u}"))
            .chain(roles.iter().map(|r| format!("arn:aws:iam::{acct}:role/{r}")))
            .collect()
    };
    let mut statements = vec![serde_json::json!({
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{acct}:root")}, "Action": "kms:*", "Resource": "*"
    })];
    let admins = principals(&t.key_admins, &t.key_admins_roles);
    if !admins.is_empty() {
        statements.push(serde_json::json!({
            "Sid": "Allow access for Key Administrators", "Effect": "Allow", "Principal": {"AWS": admins},
            "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                       "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                       "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
            "Resource": "*"
        }));
    }
    let users = principals(&t.key_users, &t.key_users_roles);
    if !users.is_empty() {
        statements.push(serde_json::json!({
            "Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": users},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*"
        }));
    }
    serde_json::json!({"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": statements})
}
