//! The Azure inventory (connections, vaults, synced keys, cloud key backups) and `delete-key-backups` jobs
//! follow the same rules on both backends: names are unique, keys match by name case-insensitively, backup
//! metadata lists never carry the blob, and a backup selector is resolved inside the database.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use common::*;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::{ItemEffect, Lease, Store, StoreError};

on_both_backends!(
    azure_connections_keep_names_unique_and_stay_while_a_vault_uses_them,
    vaults_round_trip_and_list_with_filters_sorting_and_totals,
    a_vault_sync_matches_names_case_insensitively_and_marks_gone_keys,
    an_upsert_adds_or_refreshes_one_key_and_leaves_the_others,
    azure_keys_list_with_filters_sorting_and_totals,
    backups_keep_their_blob_apart_and_list_with_filters_paging_and_totals,
    backup_selector_conditions_hold_alone_and_together_with_exact_window_bounds,
    a_backup_job_holds_the_matching_backups_oldest_first_partitioned_by_vault,
    finishing_a_backup_item_deletes_the_backup_only_on_success_under_the_lease,
    only_terminal_jobs_are_deleted_and_their_items_with_them,
    azure_sync_jobs_list_apart_from_aws_ones_and_round_trip,
);

// ---- fixtures ----

fn azure_connection(name: &str) -> AzureConnectionRecord {
    let directory = ("00000000-0000-0000-0000-0000000000c1".into(), "00000000-0000-0000-0000-0000000000t1".into());
    AzureConnectionRecord::public(ConnectionId::new(), name.into(), directory, vec![0, 1, 2, 254, 255], now())
}

fn vault(name: &str, connection: ConnectionId, subscription: &str) -> VaultRecord {
    let at = now();
    VaultRecord {
        id: VaultId::new(),
        name: name.into(),
        azure_vault_id: format!(
            "/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}"
        ),
        connection_id: connection,
        subscription_id: subscription.into(),
        location: "westeurope".into(),
        vault_type: "Microsoft.KeyVault/vaults".into(),
        vault_uri: format!("https://{name}.vault.azure.net/"),
        properties: serde_json::json!({"sku": {"family": "A", "name": "standard"}, "enableSoftDelete": true}),
        tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        synced_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// A key as a vault listing reports it.
fn key_material(name: &str, enabled: bool) -> AzureKeyMaterial {
    let t = now();
    let version = AzureKeyVersion {
        version: "0123456789abcdef".into(),
        enabled,
        created: Some(t),
        updated: Some(t),
        exp: None,
        nbf: None,
    };
    AzureKeyMaterial {
        name: name.into(),
        kid: format!("https://kv.vault.azure.net/keys/{name}/0123456789abcdef"),
        version: "0123456789abcdef".into(),
        kty: "RSA".into(),
        key_ops: vec!["encrypt".into(), "decrypt".into()],
        key_size: Some(2048),
        curve: None,
        enabled,
        created: Some(t),
        updated: Some(t),
        exp: Some(t + Duration::days(365)),
        nbf: None,
        recovery_level: "Recoverable+Purgeable".into(),
        recoverable_days: Some(90),
        managed: false,
        tags: BTreeMap::from([("team".to_string(), "red".to_string())]),
        versions: vec![version],
    }
}

fn backup_of(key: &AzureKeyRecord, name: &str, created_at: DateTime<Utc>) -> KeyBackupRecord {
    KeyBackupRecord {
        id: BackupId::new(),
        key_id: key.id,
        vault_id: key.vault_id,
        key_name: key.material.name.clone(),
        key_version: key.material.version.clone(),
        name: name.into(),
        description: String::new(),
        size_bytes: 3,
        created_by: UserId::new(),
        created_at,
        updated_at: created_at,
    }
}

fn azure_job() -> JobRecord {
    JobRecord { cloud: CLOUD_AZURE.into(), operation: Operation::DeleteKeyBackups, ..job(0) }
}

/// A connection and a vault holding `keys` (synced at `at`), with the keys' records in the order given.
async fn vault_with(s: &dyn Store, name: &str, keys: &[&str], at: DateTime<Utc>) -> (VaultRecord, Vec<AzureKeyRecord>) {
    let c = azure_connection(&format!("conn-{name}"));
    s.insert_azure_connection(&c).await.expect("insert connection");
    let v = vault(name, c.id, "sub-1");
    s.insert_vault(&v).await.expect("insert vault");
    let materials: Vec<_> = keys.iter().map(|k| key_material(k, true)).collect();
    s.sync_azure_vault(v.id, &materials, at).await.expect("sync");
    let filter = AzureKeyFilter { vault_id: Some(v.id), ..Default::default() };
    let (all, _) = s.list_azure_keys(&filter, &page(0, 100, &[])).await.expect("list");
    let records =
        keys.iter().map(|k| all.iter().find(|r| r.material.name == *k).expect("synced key").clone()).collect();
    (v, records)
}

fn names<T>(v: &(Vec<T>, u64), name: impl Fn(&T) -> &str) -> (Vec<String>, u64) {
    (v.0.iter().map(|x| name(x).to_string()).collect(), v.1)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn micros(us: i64) -> Duration {
    Duration::microseconds(us)
}

// ---- scenarios ----

async fn azure_connections_keep_names_unique_and_stay_while_a_vault_uses_them(db: &TestDb) {
    let s = db.store();
    let mut c = azure_connection("prod");
    c.description = "the production tenant".into();
    c.active_directory_endpoint = Some("https://login.microsoftonline.us".into());
    c.vault_resource_url = Some("https://vault.usgovcloudapi.net".into());
    c.key_vault_dns_suffix = Some("vault.usgovcloudapi.net".into());
    c.vault_endpoint_url = Some("https://127.0.0.1:4600/vaults/{vault}".into());
    s.insert_azure_connection(&c).await.expect("insert");
    assert_eq!(s.get_azure_connection(c.id).await.expect("get"), Some(c.clone()), "every field, secret bytes too");
    assert_eq!(s.azure_connection_by_name("prod").await.expect("by name"), Some(c.clone()));
    assert_eq!(s.azure_connection_by_name("Prod").await.expect("by name"), None, "names are case-sensitive");
    assert_eq!(s.get_azure_connection(ConnectionId::new()).await.expect("get"), None);

    let dup = s.insert_azure_connection(&azure_connection("prod")).await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("\"prod\"") && m.contains("already exists")),
        "{dup:?}"
    );
    // Byte order, as SQLite sorts: upper case before lower case, "_" between them.
    for name in ["b", "B", "_x", "a"] {
        s.insert_azure_connection(&azure_connection(name)).await.expect("insert");
    }
    let by_name = s.list_azure_connections(&page(0, 10, &["name"])).await.expect("list");
    assert_eq!(names(&by_name, |c| &c.name), (strings(&["B", "_x", "a", "b", "prod"]), 5));
    let paged = s.list_azure_connections(&page(1, 2, &["-name"])).await.expect("list");
    assert_eq!(names(&paged, |c| &c.name), (strings(&["b", "a"]), 5));
    let default = s.list_azure_connections(&page(0, 2, &[])).await.expect("list");
    assert_eq!(names(&default, |c| &c.name), (strings(&["prod", "b"]), 5), "oldest first");

    let mut renamed = c.clone();
    renamed.name = "a".into();
    assert!(matches!(s.update_azure_connection(&renamed).await, Err(StoreError::Conflict(_))));
    renamed.name = "production".into();
    renamed.secret_enc = vec![9; 40];
    renamed.vault_endpoint_url = None;
    renamed.updated_at = later(c.updated_at, 1);
    s.update_azure_connection(&renamed).await.expect("update");
    assert_eq!(s.get_azure_connection(c.id).await.expect("get"), Some(renamed.clone()));

    // A connection in use cannot go, and the refusal names the vault.
    let v = vault("kv-prod", c.id, "sub-1");
    s.insert_vault(&v).await.expect("insert vault");
    let refused = s.delete_azure_connection(c.id).await;
    assert!(matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains("kv-prod")), "{refused:?}");
    assert!(s.get_azure_connection(c.id).await.expect("get").is_some(), "still there");
    let unused = s.azure_connection_by_name("a").await.expect("by name").expect("a");
    assert!(s.delete_azure_connection(unused.id).await.expect("delete"));
    assert!(!s.delete_azure_connection(unused.id).await.expect("delete twice"));
    assert!(!s.delete_azure_connection(ConnectionId::new()).await.expect("delete unknown"));
    assert_eq!(s.list_azure_connections(&page(0, 10, &[])).await.expect("list").1, 4);
}

async fn vaults_round_trip_and_list_with_filters_sorting_and_totals(db: &TestDb) {
    let s = db.store();
    let c1 = azure_connection("c1");
    let c2 = azure_connection("c2");
    s.insert_azure_connection(&c1).await.expect("insert");
    s.insert_azure_connection(&c2).await.expect("insert");
    let b = vault("kv-b", c1.id, "sub-1");
    let upper = vault("kv-A", c1.id, "sub-2");
    let lower = vault("kv-a", c2.id, "sub-1");
    for v in [&b, &upper, &lower] {
        s.insert_vault(v).await.expect("insert");
    }
    assert_eq!(s.get_vault(b.id).await.expect("get"), Some(b.clone()), "every field, properties and tags too");
    assert_eq!(s.vault_by_name("kv-A").await.expect("by name"), Some(upper.clone()));
    assert_eq!(s.vault_by_name("KV-A").await.expect("by name"), None);
    assert_eq!(s.get_vault(VaultId::new()).await.expect("get"), None);

    let dup = s.insert_vault(&vault("kv-b", c2.id, "sub-9")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")), "{dup:?}");
    let orphan = s.insert_vault(&vault("kv-orphan", ConnectionId::new(), "sub-1")).await;
    assert!(matches!(orphan, Err(StoreError::Conflict(ref m)) if m.contains("does not exist")), "{orphan:?}");

    let mut changed = b.clone();
    changed.location = "northeurope".into();
    changed.tags.insert("owner".into(), "ops".into());
    changed.properties = serde_json::json!({"sku": {"name": "premium"}});
    changed.connection_id = c2.id;
    changed.synced_at = Some(later(b.created_at, 5));
    changed.updated_at = later(b.created_at, 6);
    s.update_vault(&changed).await.expect("update");
    assert_eq!(s.get_vault(b.id).await.expect("get"), Some(changed.clone()));
    let clash = VaultRecord { name: "kv-a".into(), ..changed.clone() };
    assert!(matches!(s.update_vault(&clash).await, Err(StoreError::Conflict(_))));

    let list = |f: VaultFilter, p: Page| async move {
        let got = s.list_vaults(&f, &p).await.expect("list");
        names(&got, |v| &v.name)
    };
    let all = VaultFilter::default;
    assert_eq!(list(all(), page(0, 10, &[])).await, (strings(&["kv-b", "kv-A", "kv-a"]), 3), "oldest first");
    assert_eq!(list(all(), page(0, 10, &["name"])).await, (strings(&["kv-A", "kv-a", "kv-b"]), 3), "byte order");
    assert_eq!(list(all(), page(1, 1, &["-name"])).await, (strings(&["kv-a"]), 3));
    assert_eq!(list(all(), page(0, 10, &["-updatedAt"])).await.0[0], "kv-b");
    assert_eq!(
        list(VaultFilter { name: Some("kv-a".into()), ..all() }, page(0, 10, &[])).await,
        (strings(&["kv-a"]), 1)
    );
    // kv-b moved to c2 above.
    let by_conn = list(VaultFilter { connection_id: Some(c2.id), ..all() }, page(0, 10, &["name"])).await;
    assert_eq!(by_conn, (strings(&["kv-a", "kv-b"]), 2));
    let by_sub = list(VaultFilter { subscription_id: Some("sub-1".into()), ..all() }, page(0, 1, &["name"])).await;
    assert_eq!(by_sub, (strings(&["kv-a"]), 2), "the total counts every match, not the page");
    let both = VaultFilter { connection_id: Some(c1.id), subscription_id: Some("sub-2".into()), ..all() };
    assert_eq!(list(both, page(0, 10, &[])).await, (strings(&["kv-A"]), 1));
    let none = VaultFilter { connection_id: Some(c1.id), subscription_id: Some("sub-1".into()), ..all() };
    assert_eq!(list(none, page(0, 10, &[])).await, (vec![], 0));
}

async fn a_vault_sync_matches_names_case_insensitively_and_marks_gone_keys(db: &TestDb) {
    let s = db.store();
    let c = azure_connection("c");
    s.insert_azure_connection(&c).await.expect("insert");
    let v = vault("kv", c.id, "sub-1");
    let w = vault("kv-other", c.id, "sub-1");
    s.insert_vault(&v).await.expect("insert");
    s.insert_vault(&w).await.expect("insert");
    let t0 = now();
    // The same name in another vault is another key.
    assert_eq!(s.sync_azure_vault(w.id, &[key_material("alpha", true)], t0).await.expect("sync"), (1, 0, 0));

    let first = vec![key_material("Alpha", true), key_material("beta", false)];
    assert_eq!(s.sync_azure_vault(v.id, &first, t0).await.expect("sync"), (2, 0, 0));
    let synced = s.get_vault(v.id).await.expect("get").expect("vault");
    assert_eq!((synced.synced_at, synced.updated_at), (Some(t0), v.updated_at), "only synced_at changes");
    let in_v = AzureKeyFilter { vault_id: Some(v.id), ..Default::default() };
    let (keys, total) = s.list_azure_keys(&in_v, &page(0, 10, &["name"])).await.expect("list");
    assert_eq!(total, 2);
    let alpha = keys[0].clone();
    assert_eq!(alpha.material, first[0], "material round-trips");
    assert_eq!(
        (alpha.vault_id, alpha.gone, alpha.synced_at, alpha.created_at, alpha.updated_at),
        (v.id, false, t0, t0, t0)
    );
    let beta = keys[1].clone();
    assert!(!beta.material.enabled);

    // "ALPHA" is Alpha (Key Vault names are case-insensitive), beta left, gamma is new.
    let t1 = later(t0, 60);
    let second = vec![key_material("ALPHA", false), key_material("gamma", true)];
    assert_eq!(s.sync_azure_vault(v.id, &second, t1).await.expect("sync"), (1, 1, 1));
    let alpha1 = s.get_azure_key(alpha.id).await.expect("get").expect("alpha");
    assert_eq!(alpha1.material, second[0], "the name is kept as Key Vault spells it now");
    assert_eq!((alpha1.created_at, alpha1.synced_at, alpha1.updated_at, alpha1.gone), (t0, t1, t1, false));
    let beta1 = s.get_azure_key(beta.id).await.expect("get").expect("beta");
    assert_eq!((beta1.gone, beta1.synced_at, beta1.updated_at), (true, t0, t1));
    assert_eq!(s.get_vault(v.id).await.expect("get").expect("vault").synced_at, Some(t1));

    // beta comes back under its old id; gamma, known, is listed twice: updated twice; ALPHA left.
    let t2 = later(t1, 60);
    let third = vec![key_material("beta", true), key_material("gamma", true), key_material("Gamma", false)];
    assert_eq!(s.sync_azure_vault(v.id, &third, t2).await.expect("sync"), (0, 3, 1));
    let beta2 = s.get_azure_key(beta.id).await.expect("get").expect("beta");
    assert_eq!((beta2.gone, beta2.material.enabled, beta2.created_at, beta2.updated_at), (false, true, t0, t2));
    let live = s.list_azure_keys(&AzureKeyFilter { gone: Some(false), ..in_v.clone() }, &page(0, 10, &["name"])).await;
    let live: Vec<_> = live.expect("list").0.iter().map(|k| (k.material.name.clone(), k.material.enabled)).collect();
    assert_eq!(live, vec![("Gamma".to_string(), false), ("beta".to_string(), true)]);

    // Stored in parts while the reads go on: only the call that ends the listing marks gone, and only what
    // no part of the same sync wrote.
    let t25 = later(t2, 30);
    assert_eq!(s.sync_azure_vault_part(v.id, &[key_material("beta", true)], t25).await.expect("part"), (0, 1));
    assert_eq!(s.sync_azure_vault(v.id, &[key_material("gamma", false)], t25).await.expect("sync"), (0, 1, 0));
    assert_eq!(s.get_azure_key(beta.id).await.expect("get").expect("beta").synced_at, t25);

    // Keys already gone are not counted again, nor touched.
    let t3 = later(t2, 60);
    assert_eq!(s.sync_azure_vault(v.id, &[], t3).await.expect("sync"), (0, 0, 2));
    let alpha3 = s.get_azure_key(alpha.id).await.expect("get").expect("alpha");
    assert_eq!((alpha3.gone, alpha3.updated_at), (true, t2), "marked gone at t2, left alone at t3");
    assert_eq!(
        s.list_azure_keys(&AzureKeyFilter { gone: Some(true), ..in_v.clone() }, &page(0, 10, &[]))
            .await
            .expect("list")
            .1,
        3
    );
    assert_eq!(s.get_vault(v.id).await.expect("get").expect("vault").synced_at, Some(t3));

    // The other vault was never touched.
    let other =
        s.list_azure_keys(&AzureKeyFilter { vault_id: Some(w.id), ..Default::default() }, &page(0, 10, &[])).await;
    let other = other.expect("list").0;
    assert_eq!((other.len(), other[0].gone, other[0].updated_at), (1, false, t0));
    assert_eq!(s.get_vault(w.id).await.expect("get").expect("vault").synced_at, Some(t0));
}

async fn an_upsert_adds_or_refreshes_one_key_and_leaves_the_others(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v, keys) = vault_with(s, "kv", &["k1", "k2"], t0).await;
    let t1 = later(t0, 10);
    let k3 = key_material("k3", true);
    let added = s.upsert_azure_key(v.id, &k3, t1).await.expect("upsert");
    assert_eq!(
        (added.vault_id, added.gone, added.created_at, added.updated_at, added.synced_at),
        (v.id, false, t1, t1, t1)
    );
    assert_eq!(added.material, k3);
    assert_eq!(s.get_azure_key(added.id).await.expect("get"), Some(added.clone()));
    assert!(!keys.iter().any(|k| k.id == added.id));

    // Another case is the same key; it keeps its id and creation time.
    let t2 = later(t0, 20);
    let mut m = key_material("K1", false);
    m.version = "fedcba9876543210".into();
    let refreshed = s.upsert_azure_key(v.id, &m, t2).await.expect("upsert");
    assert_eq!(
        (refreshed.id, refreshed.created_at, refreshed.updated_at, refreshed.synced_at),
        (keys[0].id, t0, t2, t2)
    );
    assert_eq!(refreshed.material, m);
    assert_eq!(s.get_azure_key(keys[0].id).await.expect("get"), Some(refreshed.clone()));
    assert_eq!(s.get_azure_key(keys[1].id).await.expect("get"), Some(keys[1].clone()), "k2 untouched");

    // A restored key that had left is live again.
    s.sync_azure_vault(v.id, &[key_material("k2", true), key_material("k3", true)], later(t0, 30)).await.expect("sync");
    assert!(s.get_azure_key(keys[0].id).await.expect("get").expect("k1").gone);
    let restored = s.upsert_azure_key(v.id, &key_material("k1", true), later(t0, 40)).await.expect("upsert");
    assert_eq!((restored.id, restored.gone), (keys[0].id, false));
    let all = s.list_azure_keys(&AzureKeyFilter::default(), &page(0, 10, &[])).await.expect("list");
    assert_eq!(all.1, 3, "no duplicate rows");
    assert!(all.0.iter().all(|k| !k.gone));

    let unknown_vault = s.upsert_azure_key(VaultId::new(), &key_material("x", true), t2).await;
    assert!(matches!(unknown_vault, Err(StoreError::Conflict(_))), "{unknown_vault:?}");

    let found = s.azure_keys_by_ids(&[keys[1].id, added.id, KeyId::new()]).await.expect("by ids");
    assert_eq!(sorted(found.iter().map(|k| k.id).collect()), sorted(vec![keys[1].id, added.id]));
    assert!(s.azure_keys_by_ids(&[]).await.expect("by ids").is_empty());
    assert_eq!(s.get_azure_key(KeyId::new()).await.expect("get"), None);
}

async fn azure_keys_list_with_filters_sorting_and_totals(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v1, _) = vault_with(s, "kv-1", &[], t0).await;
    let (v2, _) = vault_with(s, "kv-2", &[], t0).await;
    s.sync_azure_vault(v1.id, &[key_material("b-key", true), key_material("A-key", false)], t0).await.expect("sync");
    let in_v2 = [key_material("a-key", true), key_material("z-key", true), key_material("C-key", true)];
    s.sync_azure_vault(v2.id, &in_v2, t0).await.expect("sync");

    let list = |f: AzureKeyFilter, p: Page| async move {
        let got = s.list_azure_keys(&f, &p).await.expect("list");
        names(&got, |k| &k.material.name)
    };
    let all = AzureKeyFilter::default;
    let oldest_first = strings(&["b-key", "A-key", "a-key", "z-key", "C-key"]);
    assert_eq!(list(all(), page(0, 10, &[])).await, (oldest_first, 5), "oldest first");
    // By the name as spelled, byte-wise: not case-folded, not linguistic.
    assert_eq!(list(all(), page(0, 10, &["name"])).await, (strings(&["A-key", "C-key", "a-key", "b-key", "z-key"]), 5));
    assert_eq!(list(all(), page(1, 2, &["-name"])).await, (strings(&["b-key", "a-key"]), 5));
    assert_eq!(list(all(), page(0, 10, &["-id"])).await.1, 5);

    let in_v2 = AzureKeyFilter { vault_id: Some(v2.id), ..all() };
    assert_eq!(list(in_v2, page(0, 10, &["name"])).await.0, strings(&["C-key", "a-key", "z-key"]));
    let by_name = list(AzureKeyFilter { name: Some("A-KEY".into()), ..all() }, page(0, 10, &["name"])).await;
    assert_eq!(by_name, (strings(&["A-key", "a-key"]), 2), "the name filter is case-insensitive and exact");
    let in_v1 = AzureKeyFilter { name: Some("a-key".into()), vault_id: Some(v1.id), ..all() };
    assert_eq!(list(in_v1, page(0, 10, &[])).await.0, strings(&["A-key"]));
    assert_eq!(list(AzureKeyFilter { name: Some("a-ke".into()), ..all() }, page(0, 10, &[])).await.1, 0, "no prefix");
    assert_eq!(list(AzureKeyFilter { enabled: Some(false), ..all() }, page(0, 10, &[])).await.0, strings(&["A-key"]));
    assert_eq!(list(AzureKeyFilter { enabled: Some(true), ..all() }, page(0, 10, &[])).await.1, 4);

    // z-key and C-key leave; a-key is synced later than the rest.
    let t1 = later(t0, 60);
    s.sync_azure_vault(v2.id, &[key_material("a-key", true)], t1).await.expect("sync");
    assert_eq!(
        list(AzureKeyFilter { gone: Some(true), ..all() }, page(0, 10, &[])).await,
        (strings(&["z-key", "C-key"]), 2)
    );
    assert_eq!(list(AzureKeyFilter { gone: Some(false), ..all() }, page(0, 10, &[])).await.1, 3);
    assert_eq!(list(all(), page(0, 1, &["-synced_at"])).await.0, strings(&["a-key"]));
    assert_eq!(list(all(), page(0, 2, &["-updatedAt", "name"])).await.0, strings(&["C-key", "a-key"]));
    assert_eq!(list(all(), page(0, 2, &["synced_at", "-name"])).await.0, strings(&["z-key", "b-key"]));
}

async fn backups_keep_their_blob_apart_and_list_with_filters_paging_and_totals(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v, vk) = vault_with(s, "kv", &["k1", "k2"], t0).await;
    let (w, wk) = vault_with(s, "kv-w", &["k3"], t0).await;
    let b1 = backup_of(&vk[0], "nightly-b", t0);
    let b2 = backup_of(&vk[0], "nightly-A", later(t0, 1));
    let mut b3 = backup_of(&vk[1], "nightly-a", later(t0, 2));
    b3.description = "before rotation".into();
    b3.size_bytes = 100_000;
    let b4 = backup_of(&wk[0], "weekly", later(t0, 3));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let blobs: Vec<Vec<u8>> = vec![vec![0, 1, 2], vec![255, 0, 255], big, b"\0blob\0".to_vec()];
    // Inserted out of time order: lists sort by creation time, not by insertion.
    for (b, blob) in [(&b2, &blobs[1]), (&b1, &blobs[0]), (&b4, &blobs[3]), (&b3, &blobs[2])] {
        s.insert_key_backup(b, blob).await.expect("insert");
    }
    assert_eq!(s.get_key_backup(b3.id).await.expect("get"), Some(b3.clone()), "every metadata field");
    assert_eq!(s.get_key_backup(BackupId::new()).await.expect("get"), None);
    for (b, blob) in [(&b1, &blobs[0]), (&b2, &blobs[1]), (&b3, &blobs[2]), (&b4, &blobs[3])] {
        assert_eq!(s.key_backup_blob(b.id).await.expect("blob").as_ref(), Some(blob), "the blob byte for byte");
    }
    assert_eq!(s.key_backup_blob(BackupId::new()).await.expect("blob"), None);

    let dup = s.insert_key_backup(&b1, &[1]).await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")), "{dup:?}");
    let mut orphan = backup_of(&vk[0], "orphan", t0);
    orphan.key_id = KeyId::new();
    assert!(matches!(s.insert_key_backup(&orphan, &[1]).await, Err(StoreError::Conflict(_))));

    let found = s.key_backups_by_ids(&[b1.id, b4.id, BackupId::new()]).await.expect("by ids");
    assert_eq!(sorted(found.iter().map(|b| b.id).collect()), sorted(vec![b1.id, b4.id]));
    assert_eq!(found.iter().find(|b| b.id == b4.id), Some(&b4));
    assert!(s.key_backups_by_ids(&[]).await.expect("by ids").is_empty());

    let list = |f: KeyBackupFilter, p: Page| async move {
        let got = s.list_key_backups(&f, &p).await.expect("list");
        (got.0.iter().map(|b| b.id).collect::<Vec<_>>(), got.1)
    };
    let all = KeyBackupFilter::default;
    assert_eq!(list(all(), page(0, 10, &[])).await, (vec![b1.id, b2.id, b3.id, b4.id], 4), "oldest first");
    assert_eq!(list(all(), page(1, 2, &[])).await, (vec![b2.id, b3.id], 4), "the total counts every match");
    assert_eq!(list(all(), page(0, 10, &["-createdAt"])).await.0, vec![b4.id, b3.id, b2.id, b1.id]);
    assert_eq!(list(all(), page(0, 10, &["name"])).await.0, vec![b2.id, b3.id, b1.id, b4.id], "byte order");
    assert_eq!(
        list(KeyBackupFilter { key_id: Some(vk[0].id), ..all() }, page(0, 10, &[])).await,
        (vec![b1.id, b2.id], 2)
    );
    assert_eq!(list(KeyBackupFilter { vault_id: Some(v.id), ..all() }, page(0, 1, &[])).await, (vec![b1.id], 3));
    assert_eq!(list(KeyBackupFilter { vault_id: Some(w.id), ..all() }, page(0, 10, &[])).await, (vec![b4.id], 1));
    let crossed = KeyBackupFilter { key_id: Some(vk[0].id), vault_id: Some(w.id) };
    assert_eq!(list(crossed, page(0, 10, &[])).await, (vec![], 0));
    let listed = s.list_key_backups(&all(), &page(0, 10, &[])).await.expect("list").0;
    assert_eq!(listed[2], b3, "listed metadata equals what was stored");

    // Only the name, the description and updated_at change.
    let mut edited = b3.clone();
    edited.name = "renamed".into();
    edited.description = "kept for audit".into();
    edited.updated_at = later(t0, 50);
    let mut attempted = edited.clone();
    attempted.key_name = "other".into();
    attempted.size_bytes = 1;
    attempted.created_at = later(t0, 99);
    s.update_key_backup(&attempted).await.expect("update");
    assert_eq!(s.get_key_backup(b3.id).await.expect("get"), Some(edited));
    assert_eq!(s.key_backup_blob(b3.id).await.expect("blob"), Some(blobs[2].clone()), "the blob is untouched");

    assert!(s.delete_key_backup(b3.id).await.expect("delete"));
    assert!(!s.delete_key_backup(b3.id).await.expect("delete twice"));
    assert_eq!(s.get_key_backup(b3.id).await.expect("get"), None);
    assert_eq!(s.key_backup_blob(b3.id).await.expect("blob"), None);
    assert_eq!(list(all(), page(0, 10, &[])).await, (vec![b1.id, b2.id, b4.id], 3));
}

/// The backups a selector picks, read back from the job it creates (in item order), checked against its count.
async fn selected(s: &dyn Store, sel: &BackupSelector) -> Vec<BackupId> {
    let j = azure_job();
    let n = s.create_job_from_backups(&j, sel).await.expect("create job");
    let items = s.job_items(j.id).await.expect("items");
    assert_eq!(items.len() as i64, n);
    assert_eq!(s.count_backup_selection(sel).await.expect("count"), n as u64, "{sel:?}");
    items.iter().map(|i| i.backup_id()).collect()
}

async fn backup_selector_conditions_hold_alone_and_together_with_exact_window_bounds(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v, vk) = vault_with(s, "kv", &["k1", "k2"], t0).await;
    let (w, wk) = vault_with(s, "kv-w", &["k3"], t0).await;
    let b1 = backup_of(&vk[0], "b1", t0);
    let b2 = backup_of(&vk[1], "b2", later(t0, 10));
    let b3 = backup_of(&wk[0], "b3", later(t0, 20));
    let b4 = backup_of(&vk[0], "b4", later(t0, 30));
    for b in [&b1, &b2, &b3, &b4] {
        s.insert_key_backup(b, &[7]).await.expect("insert");
    }
    let (k1, k2, k3) = (vk[0].id, vk[1].id, wk[0].id);
    let sel = BackupSelector::default;

    assert_eq!(selected(s, &sel()).await, vec![b1.id, b2.id, b3.id, b4.id], "no condition: every backup");
    let ids = BackupSelector { backups: vec![b4.id, b2.id, BackupId::new()], ..sel() };
    assert_eq!(selected(s, &ids).await, vec![b2.id, b4.id], "unknown ids match nothing");
    assert_eq!(selected(s, &BackupSelector { keys: vec![k1], ..sel() }).await, vec![b1.id, b4.id]);
    assert_eq!(selected(s, &BackupSelector { keys: vec![k3, k1], ..sel() }).await, vec![b1.id, b3.id, b4.id]);
    assert_eq!(selected(s, &BackupSelector { vault: Some(w.id), ..sel() }).await, vec![b3.id]);
    assert_eq!(selected(s, &BackupSelector { vault: Some(v.id), ..sel() }).await, vec![b1.id, b2.id, b4.id]);

    // created_after is inclusive, created_before exclusive, to the microsecond.
    let after = |t| BackupSelector { created_after: Some(t), ..sel() };
    let before = |t| BackupSelector { created_before: Some(t), ..sel() };
    assert_eq!(selected(s, &after(b2.created_at)).await, vec![b2.id, b3.id, b4.id]);
    assert_eq!(selected(s, &after(b2.created_at + micros(1))).await, vec![b3.id, b4.id]);
    assert_eq!(selected(s, &after(b2.created_at - micros(1))).await, vec![b2.id, b3.id, b4.id]);
    assert_eq!(selected(s, &before(b3.created_at)).await, vec![b1.id, b2.id]);
    assert_eq!(selected(s, &before(b3.created_at + micros(1))).await, vec![b1.id, b2.id, b3.id]);
    assert_eq!(selected(s, &before(b1.created_at)).await, vec![]);
    let window = BackupSelector { created_after: Some(b2.created_at), created_before: Some(b4.created_at), ..sel() };
    assert_eq!(selected(s, &window).await, vec![b2.id, b3.id]);
    let empty_window =
        BackupSelector { created_after: Some(b2.created_at), created_before: Some(b2.created_at), ..sel() };
    assert_eq!(selected(s, &empty_window).await, vec![]);

    // Every condition given must hold.
    let mut all = BackupSelector { keys: vec![k1, k2], vault: Some(v.id), created_after: Some(later(t0, 1)), ..sel() };
    assert_eq!(selected(s, &all).await, vec![b2.id, b4.id]);
    all.created_before = Some(b4.created_at);
    assert_eq!(selected(s, &all).await, vec![b2.id]);
    all.backups = vec![b1.id, b4.id];
    assert_eq!(selected(s, &all).await, vec![]);
    let ids_in_vault = BackupSelector { backups: vec![b1.id, b3.id], vault: Some(w.id), ..sel() };
    assert_eq!(selected(s, &ids_in_vault).await, vec![b3.id]);
    let contradiction = BackupSelector { keys: vec![k1], vault: Some(w.id), ..sel() };
    assert_eq!(selected(s, &contradiction).await, vec![]);
    assert!(s.backup_selection_vaults(&contradiction).await.expect("vaults").is_empty());

    // The vaults of the matches, each once.
    assert_eq!(sorted(s.backup_selection_vaults(&sel()).await.expect("vaults")), sorted(vec![v.id, w.id]));
    assert_eq!(
        s.backup_selection_vaults(&BackupSelector { keys: vec![k1], ..sel() }).await.expect("vaults"),
        vec![v.id]
    );
    assert_eq!(s.backup_selection_vaults(&after(b3.created_at)).await.expect("vaults").len(), 2);
    assert_eq!(s.backup_selection_vaults(&after(b4.created_at)).await.expect("vaults"), vec![v.id]);

    // Id lists far beyond SQLite's bound-variable limit (32766).
    let mut many: Vec<BackupId> = (0..40_000).map(|_| BackupId::new()).collect();
    many.push(b3.id);
    let mut keys: Vec<KeyId> = (0..40_000).map(|_| KeyId::new()).collect();
    keys.push(k3);
    let huge = BackupSelector { backups: many.clone(), keys, ..sel() };
    assert_eq!(selected(s, &huge).await, vec![b3.id]);
    assert_eq!(s.backup_selection_vaults(&huge).await.expect("vaults"), vec![w.id]);
    assert_eq!(s.key_backups_by_ids(&many).await.expect("by ids").len(), 1);
    let key_ids: Vec<KeyId> = (0..40_000).map(|_| KeyId::new()).chain([k1]).collect();
    assert_eq!(s.azure_keys_by_ids(&key_ids).await.expect("by ids").len(), 1);
}

async fn a_backup_job_holds_the_matching_backups_oldest_first_partitioned_by_vault(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v, vk) = vault_with(s, "kv", &["k1"], t0).await;
    let (w, wk) = vault_with(s, "kv-w", &["k2"], t0).await;
    // Inserted newest first; b2 and b3 were taken in the same microsecond (insertion order decides).
    let b4 = backup_of(&vk[0], "b4", later(t0, 30));
    let b2 = backup_of(&wk[0], "b2", later(t0, 10));
    let b3 = backup_of(&vk[0], "b3", later(t0, 10));
    let b1 = backup_of(&wk[0], "b1", t0);
    for b in [&b4, &b2, &b3, &b1] {
        s.insert_key_backup(b, &[1, 2, 3]).await.expect("insert");
    }

    let j = azure_job();
    let n = s.create_job_from_backups(&j, &BackupSelector::default()).await.expect("create");
    assert_eq!(n, 4);
    let stored = s.get_job(j.id).await.expect("get").expect("job");
    assert_eq!(stored, JobRecord { total: 4, ..j.clone() }, "the job as given, with total = the item count");
    let items = s.job_items(j.id).await.expect("items");
    assert_eq!(items.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(items.iter().map(|i| i.backup_id()).collect::<Vec<_>>(), vec![b1.id, b2.id, b3.id, b4.id]);
    assert!(items.iter().all(|i| i.status == ItemStatus::Pending && i.attempts == 0 && i.updated_at == j.created_at));
    assert_eq!(items[0].key_id, KeyId(b1.id.0), "the item's key_id holds the backup id");

    let mut partitions: Vec<String> =
        s.pending_partitions().await.expect("partitions").into_iter().map(|p| p.0).collect();
    partitions.sort();
    assert_eq!(partitions, sorted(vec![azure_partition(v.id), azure_partition(w.id)]));
    assert_eq!(azure_partition(v.id), format!("azure/{}", v.id));

    let lease = later(now(), 30);
    let in_v = s.claim_items(&azure_partition(v.id), Lease::new("node-a", now(), lease), 10).await.expect("claim");
    assert_eq!(in_v.iter().map(|c| c.backup_id()).collect::<Vec<_>>(), vec![b3.id, b4.id]);
    assert!(in_v.iter().all(|c| c.operation == Operation::DeleteKeyBackups && c.partition == azure_partition(v.id)));
    assert_eq!(in_v.iter().map(|c| c.job_id).collect::<Vec<_>>(), vec![j.id, j.id]);
    let in_w = s.claim_items(&azure_partition(w.id), Lease::new("node-b", now(), lease), 1).await.expect("claim");
    assert_eq!(in_w.iter().map(|c| c.backup_id()).collect::<Vec<_>>(), vec![b1.id], "oldest first");
    assert!(
        s.claim_items(&azure_partition(v.id), Lease::new("node-a", now(), lease), 10).await.expect("claim").is_empty()
    );

    // A selection that matches nothing gives a job without items.
    let none = azure_job();
    let sel = BackupSelector { vault: Some(VaultId::new()), ..Default::default() };
    assert_eq!(s.create_job_from_backups(&none, &sel).await.expect("create"), 0);
    assert_eq!(s.get_job(none.id).await.expect("get").expect("job").total, 0);
    assert!(s.job_items(none.id).await.expect("items").is_empty());
}

async fn finishing_a_backup_item_deletes_the_backup_only_on_success_under_the_lease(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v, vk) = vault_with(s, "kv", &["k1"], t0).await;
    let backups: Vec<KeyBackupRecord> = (0..5).map(|i| backup_of(&vk[0], &format!("b{i}"), later(t0, i))).collect();
    for b in &backups {
        s.insert_key_backup(b, &[1]).await.expect("insert");
    }
    let j = azure_job();
    assert_eq!(s.create_job_from_backups(&j, &BackupSelector::default()).await.expect("create"), 5);
    let p = azure_partition(v.id);
    let claimed = s.claim_items(&p, Lease::new("a", t0, later(t0, 1)), 10).await.expect("claim");
    assert_eq!(claimed.len(), 5);
    let exists = |b: &KeyBackupRecord| {
        let id = b.id;
        async move { s.get_key_backup(id).await.expect("get").is_some() }
    };
    let finish = |c: &ClaimedItem, owner: &'static str, outcome: ItemOutcome| {
        let (job, seq, id) = (c.job_id, c.seq, c.backup_id());
        async move {
            s.finish_item_with(job, seq, owner, &outcome, later(t0, 1), ItemEffect::DeleteBackup(id))
                .await
                .expect("finish")
        }
    };
    let ok = || ItemOutcome::Succeeded { detail: "Success".into(), state_before: None, state_after: None };

    assert!(finish(&claimed[0], "a", ok()).await);
    assert!(!exists(&backups[0]).await, "deleted with the success");
    assert_eq!(s.key_backup_blob(backups[0].id).await.expect("blob"), None);
    let failed = ItemOutcome::Failed { code: "Internal".into(), message: "boom".into(), state_before: None };
    assert!(finish(&claimed[1], "a", failed).await);
    assert!(exists(&backups[1]).await, "kept after a failure");
    assert!(finish(&claimed[2], "a", ItemOutcome::Skipped { reason: "cancelled".into() }).await);
    assert!(exists(&backups[2]).await, "kept when skipped");
    let retry = ItemOutcome::Retry { code: "Throttled".into(), message: "429".into(), not_before: t0 };
    assert!(finish(&claimed[3], "a", retry).await);
    assert!(exists(&backups[3]).await, "kept for the retry");

    // a's lease on the last item expires and b takes it (and the retried one) over: a is fenced out.
    assert_eq!(s.release_expired_leases(later(t0, 2)).await.expect("release"), 1);
    let taken = s.claim_items(&p, Lease::new("b", later(t0, 2), later(t0, 60)), 10).await.expect("claim");
    assert_eq!(taken.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![claimed[3].seq, claimed[4].seq]);
    assert!(!finish(&claimed[4], "a", ok()).await, "the lease was lost");
    assert!(exists(&backups[4]).await, "nothing deleted without the lease");
    assert!(finish(&taken[1], "b", ok()).await);
    assert!(!exists(&backups[4]).await);
    // A backup deleted meanwhile: the effect does nothing, the item still succeeds.
    assert!(s.delete_key_backup(backups[3].id).await.expect("delete"));
    assert!(finish(&taken[0], "b", ok()).await);

    let done = s.get_job(j.id).await.expect("get").expect("job");
    assert_eq!((done.status, done.succeeded, done.failed, done.skipped), (JobStatus::Completed, 3, 1, 1));
    let left = s.list_key_backups(&KeyBackupFilter::default(), &page(0, 10, &[])).await.expect("list");
    assert_eq!((left.0.iter().map(|b| b.id).collect::<Vec<_>>(), left.1), (vec![backups[1].id, backups[2].id], 2));
}

async fn only_terminal_jobs_are_deleted_and_their_items_with_them(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let (v, vk) = vault_with(s, "kv", &["k1"], t0).await;
    for i in 0..3 {
        s.insert_key_backup(&backup_of(&vk[0], &format!("b{i}"), later(t0, i)), &[1]).await.expect("insert");
    }
    assert_eq!(s.delete_job(JobId::new()).await.expect("delete"), None, "unknown");

    let running = azure_job();
    s.create_job_from_backups(&running, &BackupSelector::default()).await.expect("create");
    assert_eq!(s.delete_job(running.id).await.expect("delete"), Some(false), "in progress");
    assert_eq!(s.get_job(running.id).await.expect("get").expect("kept").status, JobStatus::InProgress);
    assert_eq!(s.job_items(running.id).await.expect("items").len(), 3);

    let cancelled = s.cancel_job(running.id, later(t0, 5)).await.expect("cancel").expect("job");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(s.delete_job(running.id).await.expect("delete"), Some(true));
    assert_eq!(s.get_job(running.id).await.expect("get"), None);
    assert!(s.job_items(running.id).await.expect("items").is_empty());
    assert_eq!(s.list_items(running.id, None, &page(0, 10, &[])).await.expect("items").1, 0);
    assert_eq!(s.delete_job(running.id).await.expect("delete"), None, "gone already");

    // A job that ran to completion goes the same way; the other job's items stay.
    let other = azure_job();
    s.create_job_from_backups(&other, &BackupSelector::default()).await.expect("create");
    let done = azure_job();
    let sel = BackupSelector { created_before: Some(later(t0, 1)), ..Default::default() };
    assert_eq!(s.create_job_from_backups(&done, &sel).await.expect("create"), 1);
    let p = azure_partition(v.id);
    let claimed = s.claim_items(&p, Lease::new("a", later(t0, 10), later(t0, 60)), 10).await.expect("claim");
    let mine = claimed.iter().find(|c| c.job_id == done.id).expect("the item of `done`");
    assert!(s.finish_item(done.id, mine.seq, "a", &success(), later(t0, 11)).await.expect("finish"));
    assert_eq!(s.get_job(done.id).await.expect("get").expect("job").status, JobStatus::Completed);
    assert_eq!(s.delete_job(done.id).await.expect("delete"), Some(true));
    assert_eq!(s.get_job(done.id).await.expect("get"), None);
    assert_eq!(s.job_items(other.id).await.expect("items").len(), 3);
    assert_eq!(s.delete_job(other.id).await.expect("delete"), Some(false));
}

async fn azure_sync_jobs_list_apart_from_aws_ones_and_round_trip(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let aws = SyncJobRecord { kms: vec![KmsId::new()], regions: vec!["us-east-1".into()], ..sync_job(CLOUD_AWS, t0) };
    let chosen = SyncJobRecord {
        vaults: vec![VaultId::new(), VaultId::new()],
        take_cloud_key_backup: true,
        ..sync_job(CLOUD_AZURE, later(t0, 1))
    };
    let mut everything = SyncJobRecord { synchronize_all: true, ..sync_job(CLOUD_AZURE, later(t0, 2)) };
    everything.status = JobStatus::Completed;
    everything.completed_at = Some(later(t0, 3));
    everything.detailed_status.insert("kv-prod".into(), "Success".into());
    for j in [&aws, &chosen, &everything] {
        s.create_sync_job(j).await.expect("create");
    }
    assert_eq!(s.get_sync_job(chosen.id).await.expect("get"), Some(chosen.clone()));

    let azure = s.list_sync_jobs(CLOUD_AZURE, None, &page(0, 10, &[])).await.expect("list");
    assert_eq!(azure, (vec![everything.clone(), chosen.clone()], 2), "Azure jobs only, newest first, as stored");
    let running = s.list_sync_jobs(CLOUD_AZURE, Some(JobStatus::InProgress), &page(0, 10, &[])).await.expect("list");
    assert_eq!(running, (vec![chosen.clone()], 1));
    let paged = s.list_sync_jobs(CLOUD_AZURE, None, &page(1, 1, &["createdAt"])).await.expect("list");
    assert_eq!(paged, (vec![everything.clone()], 2));
    assert_eq!(s.list_sync_jobs(CLOUD_AWS, None, &page(0, 10, &[])).await.expect("list"), (vec![aws.clone()], 1));
}
