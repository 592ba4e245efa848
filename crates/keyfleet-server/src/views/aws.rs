//! AWS records → CCKM wire views.

use std::collections::BTreeMap;

use keyfleet_api_types::aws::*;
use keyfleet_core::*;
use keyfleet_service::aws::{KmsEntry, TemplateEntry};
use keyfleet_service::sync_jobs::SyncJobEntry;

use super::{acl, uri};

pub fn connection(c: AwsConnectionRecord) -> AwsConnectionView {
    resource_view!(AwsConnectionView {
        c,
        uri: uri("connectionmgmt:connections", format!("{}-{}", c.name, c.id)),
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
    })
}

pub fn kms((k, acls, connection_name): KmsEntry) -> KmsView {
    resource_view!(KmsView {
        k,
        uri: uri("cckm:aws-kms", k.id),
        name: k.name,
        account_id: k.account_id,
        connection: connection_name,
        regions: k.regions,
        acls: acls.into_iter().map(acl).collect(),
        quotas: k.quotas,
    })
}

pub fn key((k, kms_name): (AwsKeyRecord, String)) -> AwsKeyView {
    let m = k.material;
    resource_view!(AwsKeyView {
        k,
        uri: uri("cckm:aws-key", k.id),
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
    })
}

pub fn template((t, kms_name): TemplateEntry) -> TemplateView {
    resource_view!(TemplateView {
        t,
        uri: uri("cckm:aws-template", t.id),
        name: t.name,
        kms: kms_name,
        account_id: t.account_id,
        policy: t.policy,
        key_admins: t.key_admins,
        key_users: t.key_users,
        key_admins_roles: t.key_admins_roles,
        key_users_roles: t.key_users_roles,
        is_verified: t.is_verified,
    })
}

pub fn sync_job((j, kms_names): SyncJobEntry) -> SyncJobView {
    job_view!(SyncJobView {
        j,
        kind: "cckm:synchronize",
        detailed_status: j.detailed_status,
        cloud: "aws".into(),
        kms: kms_names,
        regions: j.regions,
        synchronize_all: j.synchronize_all,
    })
}
