//! Cloud inventory and key-sync jobs round-trip through both backends with the same rules: names are
//! unique, references are kept, lists sort byte-wise with a stable tie-breaker, and a sync marks what left.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::*;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::{AwsRegionKeys, Lease, StoreError};

on_both_backends!(
    connections_and_containers_keep_names_unique_and_references_intact,
    acls_are_replaced_per_principal_and_go_with_their_container,
    a_region_sync_adds_updates_and_marks_gone_keys,
    a_region_sync_of_many_keys_writes_each_once_as_listed_last,
    a_region_sync_in_parts_marks_gone_only_at_its_end,
    keys_list_with_filters_sorting_and_totals,
    templates_round_trip_and_outlive_their_container,
    sync_jobs_are_leased_one_node_at_a_time_and_fenced,
);

fn names<T>(v: &(Vec<T>, u64), name: impl Fn(&T) -> &str) -> (Vec<String>, u64) {
    (v.0.iter().map(|x| name(x).to_string()).collect(), v.1)
}

async fn connections_and_containers_keep_names_unique_and_references_intact(db: &TestDb) {
    let s = db.store();
    let mut c = connection("prod");
    c.assume_role_arn = Some("arn:aws:iam::111122223333:role/keyfleet".into());
    s.insert_aws_connection(&c).await.expect("insert");
    assert_eq!(s.get_aws_connection(c.id).await.expect("get"), Some(c.clone()), "every field, secret bytes too");
    assert_eq!(s.aws_connection_by_name("prod").await.expect("by name"), Some(c.clone()));
    assert_eq!(s.aws_connection_by_name("Prod").await.expect("by name"), None, "names are case-sensitive");

    let dup = s.insert_aws_connection(&connection("prod")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")), "{dup:?}");
    // Byte order, as SQLite sorts: upper case before lower case, "_" between them.
    for name in ["b", "B", "_x", "a"] {
        s.insert_aws_connection(&connection(name)).await.expect("insert");
    }
    let by_name = s.list_aws_connections(&page(0, 10, &["name"])).await.expect("list");
    assert_eq!(names(&by_name, |c| &c.name), (vec!["B".into(), "_x".into(), "a".into(), "b".into(), "prod".into()], 5));
    let newest = s.list_aws_connections(&page(1, 2, &["-name"])).await.expect("list");
    assert_eq!(names(&newest, |c| &c.name), (vec!["b".into(), "a".into()], 5));
    let default = s.list_aws_connections(&page(0, 2, &[])).await.expect("list");
    assert_eq!(names(&default, |c| &c.name).0, vec!["prod", "b"], "oldest first");

    let mut renamed = c.clone();
    renamed.name = "a".into();
    assert!(matches!(s.update_aws_connection(&renamed).await, Err(StoreError::Conflict(_))));
    renamed.name = "production".into();
    renamed.secret_enc = vec![9; 40];
    renamed.updated_at = later(c.updated_at, 1);
    s.update_aws_connection(&renamed).await.expect("update");
    assert_eq!(s.get_aws_connection(c.id).await.expect("get"), Some(renamed.clone()));

    let mut k = kms("kms-1", "111122223333", c.id, &["us-east-1", "eu-west-1"]);
    k.quotas = BTreeMap::from([("DisableKey".to_string(), 2.5)]);
    s.insert_kms(&k).await.expect("insert kms");
    assert_eq!(s.get_kms(k.id).await.expect("get"), Some(k.clone()));
    assert_eq!(s.kms_by_name("kms-1").await.expect("by name"), Some(k.clone()));
    assert!(matches!(s.insert_kms(&kms("kms-1", "1", c.id, &[])).await, Err(StoreError::Conflict(_))));
    let orphan = s.insert_kms(&kms("kms-2", "1", ConnectionId::new(), &[])).await;
    assert!(matches!(orphan, Err(StoreError::Conflict(ref m)) if m.contains("does not exist")), "{orphan:?}");
    let mut k2 = k.clone();
    k2.regions = vec!["ap-south-1".into()];
    k2.quotas.clear();
    s.update_kms(&k2).await.expect("update kms");
    assert_eq!(s.list_kms(&page(0, 10, &[])).await.expect("list"), (vec![k2.clone()], 1));

    // A connection in use cannot go; once its container is gone, it can.
    assert!(matches!(s.delete_aws_connection(c.id).await, Err(StoreError::Conflict(_))));
    assert!(s.delete_kms(k.id).await.expect("delete kms"));
    assert!(!s.delete_kms(k.id).await.expect("delete kms twice"));
    assert!(s.delete_aws_connection(c.id).await.expect("delete"));
    assert_eq!(s.get_aws_connection(c.id).await.expect("get"), None);
    assert_eq!(s.list_aws_connections(&page(0, 10, &[])).await.expect("list").1, 4);
}

async fn acls_are_replaced_per_principal_and_go_with_their_container(db: &TestDb) {
    let s = db.store();
    let c = connection("c");
    s.insert_aws_connection(&c).await.expect("insert");
    let k = kms("k", "111122223333", c.id, &["us-east-1"]);
    s.insert_kms(&k).await.expect("insert kms");
    let res = AclResource::AwsKms(k.id);
    let user = UserId::new();
    let acts = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    s.set_acl(res, &Principal::Group("CCKM Users".into()), &acts(&["view"])).await.expect("set");
    s.set_acl(res, &Principal::Group("Auditors".into()), &acts(&["view"])).await.expect("set");
    s.set_acl(res, &Principal::User(user), &acts(&["view", "keybulkoperation"])).await.expect("set");
    s.set_acl(res, &Principal::Group("CCKM Users".into()), &acts(&["keybulkoperation"])).await.expect("replace");
    let got = s.acls(res).await.expect("acls");
    assert_eq!(
        got,
        vec![
            AclEntry { principal: Principal::User(user), actions: acts(&["view", "keybulkoperation"]) },
            AclEntry { principal: Principal::Group("Auditors".into()), actions: acts(&["view"]) },
            AclEntry { principal: Principal::Group("CCKM Users".into()), actions: acts(&["keybulkoperation"]) },
        ],
        "users first, then groups by name; a second set replaces"
    );
    s.set_acl(res, &Principal::Group("Auditors".into()), &[]).await.expect("remove");
    assert_eq!(s.acls(res).await.expect("acls").len(), 2);
    assert!(s.delete_kms(k.id).await.expect("delete"));
    // A new container with the same id would not inherit them.
    assert!(s.acls(res).await.expect("acls").is_empty());
}

async fn a_region_sync_adds_updates_and_marks_gone_keys(db: &TestDb) {
    let s = db.store();
    let c = connection("c");
    s.insert_aws_connection(&c).await.expect("insert");
    let k = kms("k", "111122223333", c.id, &["us-east-1", "eu-west-1"]);
    s.insert_kms(&k).await.expect("insert kms");
    let t0 = now();
    let first = vec![material("k1", "Enabled", &[], &[]), material("k2", "Enabled", &[("team", "red")], &["alias/a"])];
    assert_eq!(
        s.sync_aws_region(&AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys: &first }, t0).await.expect("sync"),
        (2, 0, 0)
    );
    assert_eq!(
        s.sync_aws_region(
            &AwsRegionKeys { kms_id: k.id, region: "eu-west-1", keys: &[material("k9", "Enabled", &[], &[])] },
            t0
        )
        .await
        .expect("sync"),
        (1, 0, 0)
    );
    let (keys, _) = s.list_aws_keys(&AwsKeyFilter::default(), &page(0, 10, &["KeyID"])).await.expect("list");
    let k1 = keys.iter().find(|x| x.material.key_id == "k1").expect("k1").clone();
    assert_eq!(
        (k1.kms_id, k1.region.as_str(), k1.gone, k1.synced_at, k1.created_at),
        (k.id, "us-east-1", false, t0, t0)
    );
    assert_eq!(keys.iter().find(|x| x.material.key_id == "k2").expect("k2").material, first[1], "material round-trips");

    // k1 is disabled in AWS, k2 left, k3 is new; the other region is untouched.
    let t1 = later(t0, 60);
    let second = vec![material("k1", "Disabled", &[], &[]), material("k3", "Enabled", &[], &[])];
    assert_eq!(
        s.sync_aws_region(&AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys: &second }, t1).await.expect("sync"),
        (1, 1, 1)
    );
    let k1b = s.get_aws_key(k1.id).await.expect("get").expect("k1");
    assert_eq!((k1b.material.key_state.as_str(), k1b.material.enabled), ("Disabled", false));
    assert_eq!((k1b.id, k1b.created_at, k1b.synced_at, k1b.updated_at), (k1.id, t0, t1, t1), "same row, same id");
    let gone = s.list_aws_keys(&AwsKeyFilter { gone: Some(true), ..Default::default() }, &page(0, 10, &[])).await;
    let gone = gone.expect("list");
    assert_eq!((gone.0[0].material.key_id.as_str(), gone.0[0].updated_at, gone.1), ("k2", t1, 1));
    let eu = AwsKeyFilter { region: Some("eu-west-1".into()), gone: Some(false), ..Default::default() };
    assert_eq!(s.list_aws_keys(&eu, &page(0, 10, &[])).await.expect("list").1, 1);

    // A key that comes back is live again, under the same id; a key listed twice is added, then updated.
    let t2 = later(t1, 60);
    let third = vec![first[1].clone(), material("k3", "Enabled", &[], &[]), material("k3", "Disabled", &[], &[])];
    assert_eq!(
        s.sync_aws_region(&AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys: &third }, t2).await.expect("sync"),
        (0, 3, 1)
    );
    let live =
        s.list_aws_keys(&AwsKeyFilter { gone: Some(false), ..Default::default() }, &page(0, 10, &["KeyID"])).await;
    let live: Vec<_> =
        live.expect("list").0.iter().map(|k| (k.material.key_id.clone(), k.material.key_state.clone())).collect();
    assert_eq!(
        live,
        vec![("k2".into(), "Enabled".into()), ("k3".into(), "Disabled".into()), ("k9".into(), "Enabled".into())]
    );

    let t3 = later(t2, 1);
    let mut m = first[1].clone();
    m.key_state = "PendingDeletion".into();
    m.enabled = false;
    m.deletion_date = Some(t3);
    let k2 = gone.0[0].id;
    s.update_aws_key_material(k2, &m, t3).await.expect("update");
    let after = s.get_aws_key(k2).await.expect("get").expect("k2");
    assert_eq!((after.material, after.updated_at, after.synced_at), (m, t3, t2), "an effect is not a sync");
    s.mark_aws_key_gone(k2, t3).await.expect("gone");
    assert!(s.get_aws_key(k2).await.expect("get").expect("k2").gone);
    assert_eq!(s.get_aws_key(KeyId::new()).await.expect("get"), None);

    let ids = vec![k1.id, k2, KeyId::new()];
    let mut found: Vec<KeyId> = s.aws_keys_by_ids(&ids).await.expect("by ids").iter().map(|k| k.id).collect();
    found.sort();
    let mut want = vec![k1.id, k2];
    want.sort();
    assert_eq!(found, want, "unknown ids are simply absent");
    assert!(s.aws_keys_by_ids(&[]).await.expect("by ids").is_empty());

    // Deleting the container takes its keys with it.
    assert!(s.delete_kms(k.id).await.expect("delete"));
    assert_eq!(s.list_aws_keys(&AwsKeyFilter::default(), &page(0, 10, &[])).await.expect("list").1, 0);
}

/// A KMS container over one region, us-east-1, with its connection.
async fn one_region_container(s: &dyn keyfleet_store::Store) -> KmsRecord {
    let c = connection("c");
    s.insert_aws_connection(&c).await.expect("insert");
    let k = kms("k", "111122223333", c.id, &["us-east-1"]);
    s.insert_kms(&k).await.expect("insert kms");
    k
}

/// A region's keys are written many per statement: a listing longer than one statement, with a key listed
/// twice, stores every key once, as listed last, and counts as the key-by-key writes did.
async fn a_region_sync_of_many_keys_writes_each_once_as_listed_last(db: &TestDb) {
    let s = db.store();
    let k = one_region_container(s).await;
    let region = |keys| AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys };
    let mut listed: Vec<_> = (0..400).map(|n| material(&format!("k{n:03}"), "Enabled", &[], &[])).collect();
    listed.insert(150, material("k007", "Disabled", &[], &[])); // k007 again, in the next statement
    let t0 = now();
    assert_eq!(s.sync_aws_region(&region(&listed), t0).await.expect("sync"), (400, 1, 0));
    let stored = s.list_aws_keys(&AwsKeyFilter::default(), &page(0, 1000, &["KeyID"])).await.expect("list");
    assert_eq!(stored.1, 400);
    let k007 = stored.0.iter().find(|k| k.material.key_id == "k007").expect("k007");
    assert_eq!((k007.material.key_state.as_str(), k007.created_at), ("Disabled", t0), "the last listing wins");

    let t1 = later(t0, 60);
    assert_eq!(s.sync_aws_region(&region(&listed[..300]), t1).await.expect("sync"), (0, 300, 101));
    let live = s.list_aws_keys(&AwsKeyFilter { gone: Some(false), ..Default::default() }, &page(0, 10, &[])).await;
    assert_eq!(live.expect("list").1, 299, "k007 was listed twice among the first 300");
}

/// A region stored in parts while its reads go on: a part adds and updates and marks nothing gone; the call
/// that ends the listing marks gone only what no part of the same sync wrote.
async fn a_region_sync_in_parts_marks_gone_only_at_its_end(db: &TestDb) {
    let s = db.store();
    let k = one_region_container(s).await;
    let region = |keys| AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys };
    let live = || async {
        let (filter, page) = (AwsKeyFilter { gone: Some(false), ..Default::default() }, page(0, 10, &["KeyID"]));
        let live = s.list_aws_keys(&filter, &page).await.expect("list").0;
        live.into_iter().map(|k| k.material.key_id).collect::<Vec<_>>()
    };
    let all: Vec<_> = (0..5).map(|n| material(&format!("k{n}"), "Enabled", &[], &[])).collect();
    let t0 = now();
    assert_eq!(s.sync_aws_region(&region(&all), t0).await.expect("sync"), (5, 0, 0));

    let t1 = later(t0, 60);
    assert_eq!(s.sync_aws_region_part(&region(&all[..2]), t1).await.expect("part"), (0, 2));
    assert_eq!(live().await.len(), 5, "a part marks nothing gone");
    // k1 again (an update, not an addition) and a new k9 end the listing: k2..k4 are gone.
    let last = vec![all[1].clone(), material("k9", "Enabled", &[], &[])];
    assert_eq!(s.sync_aws_region(&region(&last), t1).await.expect("sync"), (1, 1, 3));
    assert_eq!(live().await, vec!["k0", "k1", "k9"]);

    // Two syncs of the region interleave their parts: the older one's part leaves alone what the later one
    // wrote (neither its material nor its sync time goes back), so the later one's end does not mark it gone.
    let (older, newer) = (later(t1, 60), later(t1, 120));
    let disabled = vec![material("k0", "Disabled", &[], &[])];
    s.sync_aws_region_part(&region(&disabled), newer).await.expect("newer part");
    s.sync_aws_region_part(&region(&all[..1]), older).await.expect("older part");
    s.sync_aws_region(&region(&[all[1].clone(), last[1].clone()]), newer).await.expect("newer end");
    assert_eq!(live().await, vec!["k0", "k1", "k9"]);
    let keys = s.list_aws_keys(&AwsKeyFilter::default(), &page(0, 10, &["KeyID"])).await.expect("list").0;
    assert_eq!((keys[0].material.key_state.as_str(), keys[0].synced_at), ("Disabled", newer));
}

async fn keys_list_with_filters_sorting_and_totals(db: &TestDb) {
    let s = db.store();
    let c = connection("c");
    s.insert_aws_connection(&c).await.expect("insert");
    let k = kms("k", "111122223333", c.id, &["us-east-1"]);
    s.insert_kms(&k).await.expect("insert kms");
    let other = kms("other", "444455556666", c.id, &["us-east-1"]);
    s.insert_kms(&other).await.expect("insert kms");
    let t0 = now();
    let keys = vec![
        material("b-key", "Enabled", &[("team", "red"), ("env", "prod")], &["alias/app"]),
        material("A-key", "Disabled", &[("team", "blue")], &["alias/app-old", "alias/x"]),
        material("a-key", "Enabled", &[("env", "team")], &[]),
    ];
    s.sync_aws_region(&AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys: &keys }, t0).await.expect("sync");
    s.sync_aws_region(
        &AwsRegionKeys {
            kms_id: other.id,
            region: "us-east-1",
            keys: &[material("z-key", "Enabled", &[], &["alias/app"])],
        },
        t0,
    )
    .await
    .expect("sync");

    let list = |f: AwsKeyFilter, p: Page| async move {
        let got = s.list_aws_keys(&f, &p).await.expect("list");
        (got.0.iter().map(|k| k.material.key_id.clone()).collect::<Vec<_>>(), got.1)
    };
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all = AwsKeyFilter::default;
    assert_eq!(list(all(), page(0, 10, &[])).await, (ids(&["b-key", "A-key", "a-key", "z-key"]), 4), "oldest first");
    assert_eq!(list(all(), page(0, 10, &["KeyID"])).await, (ids(&["A-key", "a-key", "b-key", "z-key"]), 4));
    assert_eq!(list(all(), page(1, 2, &["-KeyID"])).await, (ids(&["b-key", "a-key"]), 4));
    assert_eq!(list(all(), page(0, 10, &["KeyState", "-KeyID"])).await.0, ids(&["A-key", "z-key", "b-key", "a-key"]));

    assert_eq!(list(AwsKeyFilter { kms_id: Some(other.id), ..all() }, page(0, 10, &[])).await.0, ids(&["z-key"]));
    assert_eq!(list(AwsKeyFilter { aws_key_id: Some("a-key".into()), ..all() }, page(0, 10, &[])).await.1, 1);
    let arn = keys[0].arn.clone();
    assert_eq!(list(AwsKeyFilter { arn: Some(arn), ..all() }, page(0, 10, &[])).await.0, ids(&["b-key"]));
    assert_eq!(list(AwsKeyFilter { key_state: Some("Disabled".into()), ..all() }, page(0, 10, &[])).await.1, 1);
    assert_eq!(list(AwsKeyFilter { enabled: Some(true), ..all() }, page(0, 10, &[])).await.1, 3);
    assert_eq!(list(AwsKeyFilter { region: Some("eu-west-1".into()), ..all() }, page(0, 10, &[])).await.1, 0);
    // An alias filter matches a whole alias, never a prefix.
    let alias = |a: &str| AwsKeyFilter { alias: Some(a.into()), ..all() };
    assert_eq!(list(alias("alias/app"), page(0, 10, &["KeyID"])).await.0, ids(&["b-key", "z-key"]));
    assert_eq!(list(alias("alias/x"), page(0, 10, &[])).await.0, ids(&["A-key"]));
    assert_eq!(list(alias("alias/ap"), page(0, 10, &[])).await.1, 0);
    // Tags: `key` needs the key, `key=value` the pair; a value is not a key.
    let tags = |t: &[(&str, Option<&str>)]| AwsKeyFilter {
        tags: t.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect(),
        ..all()
    };
    assert_eq!(list(tags(&[("team", None)]), page(0, 10, &["KeyID"])).await.0, ids(&["A-key", "b-key"]));
    assert_eq!(list(tags(&[("team", Some("red"))]), page(0, 10, &[])).await.0, ids(&["b-key"]));
    assert_eq!(list(tags(&[("env", None), ("team", Some("red"))]), page(0, 10, &[])).await.0, ids(&["b-key"]));
    assert_eq!(list(tags(&[("env", Some("team"))]), page(0, 10, &[])).await.0, ids(&["a-key"]));
    assert_eq!(list(tags(&[("red", None)]), page(0, 10, &[])).await.1, 0);
    assert_eq!(list(tags(&[("team", Some("RED"))]), page(0, 10, &[])).await.1, 0, "values are case-sensitive");
}

async fn templates_round_trip_and_outlive_their_container(db: &TestDb) {
    let s = db.store();
    let c = connection("c");
    s.insert_aws_connection(&c).await.expect("insert");
    let k = kms("k", "111122223333", c.id, &["us-east-1"]);
    s.insert_kms(&k).await.expect("insert kms");
    let at = now();
    let t = TemplateRecord {
        id: TemplateId::new(),
        name: "lockdown".into(),
        kms_id: Some(k.id),
        account_id: "111122223333".into(),
        policy: serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "Enable IAM", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*",
                           "Resource": "*", "Condition": {"NumericLessThan": {"x": 1.5}}}]
        }),
        key_admins: vec!["arn:aws:iam::111122223333:user/admin".into()],
        key_users: vec![],
        key_admins_roles: vec![],
        key_users_roles: vec!["arn:aws:iam::111122223333:role/app".into()],
        is_verified: true,
        created_at: at,
        updated_at: at,
    };
    s.insert_template(&t).await.expect("insert");
    assert_eq!(s.get_template(t.id).await.expect("get"), Some(t.clone()));
    let dup = TemplateRecord { id: TemplateId::new(), ..t.clone() };
    assert!(matches!(s.insert_template(&dup).await, Err(StoreError::Conflict(_))));
    let second = TemplateRecord { id: TemplateId::new(), name: "Open".into(), kms_id: None, ..t.clone() };
    s.insert_template(&second).await.expect("insert");
    let listed = s.list_templates(&page(0, 10, &["name"])).await.expect("list");
    assert_eq!(names(&listed, |t| &t.name), (vec!["Open".into(), "lockdown".into()], 2));

    let mut changed = t.clone();
    changed.policy = serde_json::json!({"Version": "2012-10-17", "Statement": []});
    changed.is_verified = false;
    changed.updated_at = later(at, 1);
    s.update_template(&changed).await.expect("update");
    assert_eq!(s.get_template(t.id).await.expect("get"), Some(changed.clone()));
    changed.name = "Open".into();
    assert!(matches!(s.update_template(&changed).await, Err(StoreError::Conflict(_))));

    // Deleting the container leaves its templates, unbound.
    assert!(s.delete_kms(k.id).await.expect("delete kms"));
    assert_eq!(s.get_template(t.id).await.expect("get").expect("kept").kms_id, None);
    assert!(s.delete_template(t.id).await.expect("delete"));
    assert!(!s.delete_template(t.id).await.expect("delete twice"));
    assert_eq!(s.list_templates(&page(0, 10, &[])).await.expect("list").1, 1);
}

/// An AWS sync job over one container and region.
fn aws_sync_job(created_at: chrono::DateTime<chrono::Utc>) -> SyncJobRecord {
    SyncJobRecord { kms: vec![KmsId::new()], regions: vec!["us-east-1".into()], ..sync_job(CLOUD_AWS, created_at) }
}

async fn sync_jobs_are_leased_one_node_at_a_time_and_fenced(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let older = aws_sync_job(t0);
    let newer = aws_sync_job(later(t0, 1));
    s.create_sync_job(&newer).await.expect("create");
    s.create_sync_job(&older).await.expect("create");
    assert_eq!(s.get_sync_job(older.id).await.expect("get"), Some(older.clone()));

    let a = s.claim_sync_job(Lease::new("a", t0, later(t0, 30))).await.expect("claim").expect("one");
    assert_eq!(a.id, older.id, "oldest first");
    let b = s.claim_sync_job(Lease::new("b", t0, later(t0, 30))).await.expect("claim").expect("one");
    assert_eq!(b.id, newer.id);
    assert!(s.claim_sync_job(Lease::new("c", t0, later(t0, 30))).await.expect("claim").is_none(), "both leased");

    // Progress is fenced by the lease and extends it.
    let mut progress = a.clone();
    progress.detailed_status.insert("111122223333/us-east-1".into(), "Success".into());
    progress.updated_at = later(t0, 2);
    assert!(!s.update_sync_job(&progress, "b", later(t0, 60)).await.expect("fenced"));
    assert!(s.update_sync_job(&progress, "a", later(t0, 60)).await.expect("update"));
    assert!(
        s.claim_sync_job(Lease::new("c", later(t0, 31), later(t0, 90))).await.expect("claim").expect("b's expired").id
            == newer.id
    );
    assert!(
        s.claim_sync_job(Lease::new("d", later(t0, 31), later(t0, 90))).await.expect("claim").is_none(),
        "a renewed"
    );

    let mut done = progress.clone();
    done.status = JobStatus::Completed;
    done.completed_at = Some(later(t0, 3));
    done.updated_at = later(t0, 3);
    assert!(s.update_sync_job(&done, "a", later(t0, 60)).await.expect("finish"));
    assert_eq!(s.get_sync_job(older.id).await.expect("get"), Some(done.clone()));
    assert!(!s.update_sync_job(&done, "a", later(t0, 60)).await.expect("terminal"), "a terminal job stays");
    assert!(
        s.claim_sync_job(Lease::new("e", later(t0, 100), later(t0, 130))).await.expect("claim").expect("newer").id
            == newer.id
    );

    let cancelled = s.cancel_sync_job(newer.id, later(t0, 4)).await.expect("cancel").expect("exists");
    assert_eq!((cancelled.abort, cancelled.status, cancelled.updated_at), (true, JobStatus::InProgress, later(t0, 4)));
    let again = s.cancel_sync_job(older.id, later(t0, 5)).await.expect("cancel").expect("exists");
    assert_eq!((again.abort, again.updated_at), (true, done.updated_at), "a finished job only gets the flag");
    assert!(s.cancel_sync_job(SyncJobId::new(), t0).await.expect("cancel").is_none());

    let ids = |v: (Vec<SyncJobRecord>, u64)| (v.0.iter().map(|j| j.id).collect::<Vec<_>>(), v.1);
    let all = s.list_sync_jobs(CLOUD_AWS, None, &page(0, 10, &[])).await.expect("list");
    assert_eq!(ids(all), (vec![newer.id, older.id], 2), "newest first");
    let running = s.list_sync_jobs(CLOUD_AWS, Some(JobStatus::InProgress), &page(0, 10, &[])).await.expect("list");
    assert_eq!(ids(running), (vec![newer.id], 1));
    let paged = s.list_sync_jobs(CLOUD_AWS, None, &page(1, 1, &["createdAt"])).await.expect("list");
    assert_eq!(ids(paged), (vec![newer.id], 2));
}
