//! Stored records → CCKM wire views. The only place that knows both shapes.

use std::collections::BTreeMap;

use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::aws::*;
use keyfleet_api_types::azure::*;
use keyfleet_api_types::bulkjob::{BulkJobView, ItemView, Progress};
use keyfleet_api_types::common::{AclView, ROOT_ACCOUNT};
use keyfleet_api_types::usermgmt::{GroupView, UserView};
use keyfleet_core::*;
use keyfleet_service::bulkjobs::JobWithItems;

pub fn list<T, U>(items: Vec<T>, total: u64, page: &Page, f: impl Fn(T) -> U) -> ListEnvelope<U> {
    ListEnvelope { skip: page.skip, limit: page.limit, total, resources: items.into_iter().map(f).collect() }
}

fn uri(kind: &str, id: impl std::fmt::Display) -> String {
    format!("kylo:kylo:{kind}:{id}")
}

pub fn bulkjob(j: JobWithItems) -> BulkJobView {
    // Only finished items appear in detailed_status, as in CCKM.
    let detailed_status: BTreeMap<String, String> = j
        .items
        .iter()
        .filter(|i| i.status.is_terminal())
        .map(|i| (i.key_id.to_string(), i.detail.clone().unwrap_or_else(|| i.status.as_str().to_string())))
        .collect();
    let job = j.job;
    let progress = progress(&job);
    let (kind, cloud) = if job.cloud == CLOUD_AZURE {
        ("cckm:azure-bulkjob", AZURE_CLOUD_NAME.to_string())
    } else {
        ("cckm:bulkjob", job.cloud.clone())
    };
    BulkJobView {
        id: job.id.to_string(),
        uri: uri(kind, job.id),
        account: ROOT_ACCOUNT.into(),
        created_at: job.created_at.into(),
        updated_at: job.updated_at.into(),
        completed_at: job.completed_at.map(Into::into),
        overall_status: job.status.as_str().into(),
        detailed_status,
        abort: job.abort,
        cloud,
        keys: j.keys.iter().map(ToString::to_string).collect(),
        operation: job.operation.as_str().into(),
        days: job.params.days,
        policy_template_id: job.params.policy_template_id.map(|t| t.to_string()),
        selector: job.params.selector.clone(),
        delete_key_backups_param: job.params.delete_key_backups_param.clone(),
        progress: Some(progress),
    }
}

fn progress(job: &JobRecord) -> Progress {
    let finished = job.finished();
    let percent = if job.total == 0 { 100.0 } else { (finished as f64 * 1000.0 / job.total as f64).floor() / 10.0 };
    Progress {
        total: job.total,
        succeeded: job.succeeded,
        failed: job.failed,
        skipped: job.skipped,
        pending: job.total - finished,
        percent,
    }
}

pub fn item(i: ItemRecord) -> ItemView {
    ItemView {
        key_id: i.key_id.to_string(),
        seq: i.seq,
        status: i.status.as_str().into(),
        detail: i.detail,
        attempts: i.attempts,
        last_error_code: i.last_error_code,
        last_error_message: i.last_error_message,
        state_before: i.state_before,
        state_after: i.state_after,
        updated_at: i.updated_at.into(),
    }
}

pub fn connection(c: AwsConnectionRecord) -> AwsConnectionView {
    AwsConnectionView {
        id: c.id.to_string(),
        uri: uri("connectionmgmt:connections", format!("{}-{}", c.name, c.id)),
        account: ROOT_ACCOUNT.into(),
        created_at: c.created_at.into(),
        updated_at: c.updated_at.into(),
        name: c.name,
        description: c.description,
        category: "cloud".into(),
        service: "aws".into(),
        cloud_name: c.cloud_name,
        access_key_id: c.access_key_id,
        aws_region: c.aws_region,
        assume_role_arn: c.assume_role_arn,
        assume_role_external_id: c.assume_role_external_id,
        endpoint_url: c.endpoint_url,
        products: vec!["cckm".into()],
    }
}

fn acl(e: AclEntry) -> AclView {
    match e.principal {
        Principal::User(u) => AclView { user_id: Some(u.wire()), group: None, actions: e.actions },
        Principal::Group(g) => AclView { user_id: None, group: Some(g), actions: e.actions },
    }
}

pub fn kms((k, acls): (KmsRecord, Vec<AclEntry>), connection_name: String) -> KmsView {
    KmsView {
        id: k.id.to_string(),
        uri: uri("cckm:aws-kms", k.id),
        account: ROOT_ACCOUNT.into(),
        created_at: k.created_at.into(),
        updated_at: k.updated_at.into(),
        name: k.name,
        account_id: k.account_id,
        connection: connection_name,
        regions: k.regions,
        acls: acls.into_iter().map(acl).collect(),
        quotas: k.quotas,
    }
}

pub fn key((k, kms_name): (AwsKeyRecord, String)) -> AwsKeyView {
    let m = k.material;
    AwsKeyView {
        id: k.id.to_string(),
        uri: uri("cckm:aws-key", k.id),
        account: ROOT_ACCOUNT.into(),
        created_at: k.created_at.into(),
        updated_at: k.updated_at.into(),
        kms_id: k.kms_id.to_string(),
        kms: kms_name,
        region: k.region,
        cloud_name: "aws".into(),
        key_material_origin: m.origin.clone(),
        synced_at: k.synced_at.into(),
        gone: k.gone,
        deletion_date: m.deletion_date.map(Into::into),
        labels: BTreeMap::new(),
        aws_param: AwsParam {
            key_id: m.key_id,
            arn: m.arn,
            aws_account_id: m.account_id,
            key_state: m.key_state,
            enabled: m.enabled,
            description: m.description,
            key_usage: m.key_usage,
            origin: m.origin,
            key_manager: m.key_manager,
            creation_date: m.creation_date.map(Into::into),
            deletion_date: m.deletion_date.map(Into::into),
            multi_region: m.multi_region,
            policy: m.policy,
            tags: m.tags.into_iter().map(|(tag_key, tag_value)| AwsTag { tag_key, tag_value }).collect(),
            alias: m.aliases,
        },
    }
}

pub fn template(t: TemplateRecord, kms_name: Option<String>) -> TemplateView {
    TemplateView {
        id: t.id.to_string(),
        uri: uri("cckm:aws-template", t.id),
        account: ROOT_ACCOUNT.into(),
        created_at: t.created_at.into(),
        updated_at: t.updated_at.into(),
        name: t.name,
        kms: kms_name,
        account_id: t.account_id,
        policy: t.policy,
        key_admins: t.key_admins,
        key_users: t.key_users,
        key_admins_roles: t.key_admins_roles,
        key_users_roles: t.key_users_roles,
        is_verified: t.is_verified,
    }
}

pub fn sync_job((j, kms_names): (SyncJobRecord, Vec<String>)) -> SyncJobView {
    SyncJobView {
        id: j.id.to_string(),
        uri: uri("cckm:synchronize", j.id),
        account: ROOT_ACCOUNT.into(),
        created_at: j.created_at.into(),
        updated_at: j.updated_at.into(),
        completed_at: j.completed_at.map(Into::into),
        overall_status: j.status.as_str().into(),
        detailed_status: j.detailed_status,
        abort: j.abort,
        cloud: "aws".into(),
        kms: kms_names,
        regions: j.regions,
        synchronize_all: j.synchronize_all,
    }
}

pub fn user((u, groups): (UserRecord, Vec<String>)) -> UserView {
    UserView {
        user_id: u.id.wire(),
        username: u.username,
        name: u.name,
        email: u.email,
        nickname: u.nickname,
        groups,
        created_at: u.created_at.into(),
        updated_at: u.updated_at.into(),
        last_login: u.last_login.map(Into::into),
        logins_count: u.logins_count,
    }
}

pub fn group(g: GroupRecord) -> GroupView {
    GroupView {
        name: g.name,
        description: g.description,
        created_at: g.created_at.into(),
        updated_at: g.updated_at.into(),
        users_count: g.users_count,
    }
}

pub fn azure_connection(c: AzureConnectionRecord) -> AzureConnectionView {
    AzureConnectionView {
        id: c.id.to_string(),
        uri: uri("connectionmgmt:connections", format!("{}-{}", c.name, c.id)),
        account: ROOT_ACCOUNT.into(),
        created_at: c.created_at.into(),
        updated_at: c.updated_at.into(),
        name: c.name,
        description: c.description,
        category: "cloud".into(),
        service: "azure".into(),
        cloud_name: c.cloud_name,
        client_id: c.client_id,
        tenant_id: c.tenant_id,
        active_directory_endpoint: c
            .active_directory_endpoint
            .unwrap_or_else(|| keyfleet_clouds::azure::PUBLIC_AUTHORITY.to_string()),
        vault_resource_url: c.vault_resource_url.unwrap_or_else(|| keyfleet_clouds::azure::VAULT_RESOURCE.to_string()),
        key_vault_dns_suffix: c.key_vault_dns_suffix.unwrap_or_else(|| "vault.azure.net".to_string()),
        vault_endpoint_url: c.vault_endpoint_url,
        products: vec!["cckm".into()],
    }
}

pub fn vault((v, acls, connection): (VaultRecord, Vec<AclEntry>, String)) -> VaultView {
    VaultView {
        id: v.id.to_string(),
        uri: uri("cckm:azure-vault", v.id),
        account: ROOT_ACCOUNT.into(),
        created_at: v.created_at.into(),
        updated_at: v.updated_at.into(),
        azure_name: v.name.clone(),
        name: v.name,
        azure_vault_id: v.azure_vault_id,
        cloud_name: AZURE_CLOUD_NAME.into(),
        connection,
        connection_id: v.connection_id.to_string(),
        subscription_id: v.subscription_id,
        location: v.location,
        vault_type: v.vault_type,
        properties: v.properties,
        tags: v.tags,
        synced_at: v.synced_at.map(Into::into),
        acls: acls.into_iter().map(acl).collect(),
    }
}

pub fn azure_key((k, v): (AzureKeyRecord, VaultRecord)) -> AzureKeyView {
    let m = k.material;
    AzureKeyView {
        id: k.id.to_string(),
        uri: uri("cckm:azure-key", k.id),
        account: ROOT_ACCOUNT.into(),
        created_at: k.created_at.into(),
        updated_at: k.updated_at.into(),
        key_name: m.name,
        key_vault: v.name,
        key_vault_id: v.id.to_string(),
        region: v.location,
        cloud_name: AZURE_CLOUD_NAME.into(),
        version: m.version,
        synced_at: k.synced_at.into(),
        gone: k.gone,
        labels: BTreeMap::new(),
        azure_param: AzureParam {
            kid: m.kid,
            kty: m.kty,
            key_ops: m.key_ops,
            key_size: m.key_size,
            crv: m.curve,
            attributes: AzureKeyAttributes {
                enabled: m.enabled,
                created: m.created.map(Into::into),
                updated: m.updated.map(Into::into),
                exp: m.exp.map(Into::into),
                nbf: m.nbf.map(Into::into),
                recovery_level: m.recovery_level,
                recoverable_days: m.recoverable_days,
            },
            tags: m.tags,
            managed: m.managed,
        },
        versions: m
            .versions
            .into_iter()
            .map(|v| AzureKeyVersionView {
                version: v.version,
                enabled: v.enabled,
                created: v.created.map(Into::into),
                updated: v.updated.map(Into::into),
            })
            .collect(),
    }
}

pub fn key_backup(b: KeyBackupRecord) -> KeyBackupView {
    KeyBackupView {
        id: b.id.to_string(),
        uri: uri("cckm:azure-key-backup", b.id),
        account: ROOT_ACCOUNT.into(),
        created_at: b.created_at.into(),
        updated_at: b.updated_at.into(),
        name: b.name,
        description: b.description,
        key_id: b.key_id.to_string(),
        vault_id: b.vault_id.to_string(),
        key_name: b.key_name,
        key_version: b.key_version,
        size_bytes: b.size_bytes,
        created_by: b.created_by.wire(),
    }
}

pub fn azure_sync_job((j, vaults): (SyncJobRecord, Vec<String>)) -> AzureSyncJobView {
    AzureSyncJobView {
        id: j.id.to_string(),
        uri: uri("cckm:synchronize", j.id),
        account: ROOT_ACCOUNT.into(),
        created_at: j.created_at.into(),
        updated_at: j.updated_at.into(),
        completed_at: j.completed_at.map(Into::into),
        overall_status: j.status.as_str().into(),
        detailed_status: j.detailed_status,
        abort: j.abort,
        cloud: AZURE_CLOUD_NAME.into(),
        key_vaults: vaults,
        synchronize_all: j.synchronize_all,
        take_cloud_key_backup: j.take_cloud_key_backup,
    }
}
