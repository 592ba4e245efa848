//! Server metadata, users, groups and refresh tokens round-trip through both backends with the same rules.

#[macro_use]
mod common;

use common::*;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::StoreError;

on_both_backends!(
    meta_keeps_the_first_value,
    users_are_unique_by_name_and_list_in_byte_order,
    groups_count_their_members_and_membership_needs_both_ends,
    refresh_tokens_are_found_by_hash_and_revoked,
    the_auth_epoch_moves_with_every_change_a_remembered_token_must_see,
);

fn user(username: &str) -> UserRecord {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_string();
    UserRecord {
        name: format!("{username} name"),
        email: format!("{username}@example.com"),
        ..UserRecord::new(username.into(), hash, now())
    }
}

async fn meta_keeps_the_first_value(db: &TestDb) {
    let s = db.store();
    assert_eq!(s.get_meta("jwt_key").await.expect("get"), None);
    assert_eq!(s.put_meta_if_absent("jwt_key", "first").await.expect("put"), "first");
    assert_eq!(s.put_meta_if_absent("jwt_key", "second").await.expect("put"), "first");
    assert_eq!(s.get_meta("jwt_key").await.expect("get").as_deref(), Some("first"));
}

async fn users_are_unique_by_name_and_list_in_byte_order(db: &TestDb) {
    let s = db.store();
    let admin = user("admin");
    s.insert_user(&admin).await.expect("insert");
    assert_eq!(s.user_by_id(admin.id).await.expect("by id"), Some(admin.clone()));
    assert_eq!(s.user_by_name("admin").await.expect("by name"), Some(admin.clone()));
    assert_eq!(s.user_by_name("Admin").await.expect("by name"), None);
    let dup = s.insert_user(&user("admin")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("\"admin\"")), "{dup:?}");
    for name in ["bob", "Zed", "alice"] {
        s.insert_user(&user(name)).await.expect("insert");
    }
    let list = |sort: &'static [&'static str], skip, limit| async move {
        let (users, total) = s.list_users(&page(skip, limit, sort)).await.expect("list");
        (users.into_iter().map(|u| u.username).collect::<Vec<_>>(), total)
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(list(&[], 0, 10).await, (names(&["admin", "bob", "Zed", "alice"]), 4), "oldest first");
    assert_eq!(list(&["username"], 0, 10).await.0, names(&["Zed", "admin", "alice", "bob"]));
    assert_eq!(list(&["-username"], 1, 2).await, (names(&["alice", "admin"]), 4));

    let t = later(now(), 5);
    s.record_login(admin.id, t).await.expect("login");
    s.record_login(admin.id, t).await.expect("login");
    let after = s.user_by_id(admin.id).await.expect("by id").expect("exists");
    assert_eq!((after.last_login, after.logins_count), (Some(t), 2));
}

async fn groups_count_their_members_and_membership_needs_both_ends(db: &TestDb) {
    let s = db.store();
    let at = now();
    assert!(s.ensure_group("admin", "Administrators", at).await.expect("ensure"));
    assert!(!s.ensure_group("admin", "changed", later(at, 1)).await.expect("ensure again"));
    assert!(s.ensure_group("CCKM Users", "", at).await.expect("ensure"));
    assert!(s.ensure_group("CCKM Admins", "", at).await.expect("ensure"));
    let g = s.get_group("admin").await.expect("get").expect("exists");
    assert_eq!((g.description.as_str(), g.created_at, g.users_count), ("Administrators", at, 0));
    assert_eq!(s.get_group("nobody").await.expect("get"), None);

    let (alice, bob) = (user("alice"), user("bob"));
    s.insert_user(&alice).await.expect("insert");
    s.insert_user(&bob).await.expect("insert");
    s.add_group_member("admin", alice.id).await.expect("add");
    s.add_group_member("admin", alice.id).await.expect("adding twice is fine");
    s.add_group_member("CCKM Users", alice.id).await.expect("add");
    s.add_group_member("admin", bob.id).await.expect("add");
    let unknown_group = s.add_group_member("nope", alice.id).await;
    assert!(matches!(unknown_group, Err(StoreError::Conflict(_))), "{unknown_group:?}");
    let unknown_user = s.add_group_member("admin", UserId::new()).await;
    assert!(matches!(unknown_user, Err(StoreError::Conflict(_))), "{unknown_user:?}");

    assert_eq!(s.user_groups(alice.id).await.expect("groups"), vec!["CCKM Users", "admin"], "byte order");
    let (groups, total) = s.list_groups(&page(0, 10, &[])).await.expect("list");
    let counts: Vec<_> = groups.iter().map(|g| (g.name.as_str(), g.users_count)).collect();
    assert_eq!((counts, total), (vec![("CCKM Admins", 0), ("CCKM Users", 1), ("admin", 2)], 3));
    let (groups, _) = s.list_groups(&page(1, 1, &["-name"])).await.expect("list");
    assert_eq!(groups[0].name, "CCKM Users");

    assert!(s.remove_group_member("admin", bob.id).await.expect("remove"));
    assert!(!s.remove_group_member("admin", bob.id).await.expect("remove twice"));
    assert_eq!(s.get_group("admin").await.expect("get").expect("exists").users_count, 1);
    assert!(s.user_groups(bob.id).await.expect("groups").is_empty());
}

async fn refresh_tokens_are_found_by_hash_and_revoked(db: &TestDb) {
    let s = db.store();
    let u = user("alice");
    s.insert_user(&u).await.expect("insert");
    let at = now();
    let t = RefreshTokenRecord {
        id: RefreshTokenId::new(),
        user_id: u.id,
        client_id: "keyfleet-cli".into(),
        token_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        created_at: at,
        expires_at: later(at, 86_400),
        revoked: false,
    };
    s.insert_refresh_token(&t).await.expect("insert");
    assert_eq!(s.refresh_token_by_hash(&t.token_hash).await.expect("by hash"), Some(t.clone()));
    assert_eq!(s.refresh_token_by_hash("other").await.expect("by hash"), None);
    s.revoke_refresh_token(t.id).await.expect("revoke");
    assert!(s.refresh_token_by_hash(&t.token_hash).await.expect("by hash").expect("kept").revoked);
    let orphan = RefreshTokenRecord { id: RefreshTokenId::new(), user_id: UserId::new(), token_hash: "x".into(), ..t };
    assert!(s.insert_refresh_token(&orphan).await.is_err(), "a token needs its user");
}

async fn the_auth_epoch_moves_with_every_change_a_remembered_token_must_see(db: &TestDb) {
    let s = db.store();
    // On PostgreSQL, another node's view: the epoch is read from the database, not from this process.
    let other = db.node().await;
    let u = user("erin");
    s.insert_user(&u).await.expect("insert");
    s.ensure_group("ops", "", now()).await.expect("group");
    let mut last = other.auth_epoch().await.expect("epoch");
    let mut moved = async |what: &str, expected: bool| {
        let epoch = other.auth_epoch().await.expect("epoch");
        assert_eq!(epoch != last, expected, "{what}: epoch {last} -> {epoch}");
        last = epoch;
    };
    s.record_login(u.id, now()).await.expect("login");
    moved("a login", false).await;
    s.add_group_member("ops", u.id).await.expect("add");
    moved("a membership added", true).await;
    s.remove_group_member("ops", u.id).await.expect("remove");
    moved("a membership removed", true).await;
    s.add_group_member("ops", u.id).await.expect("add");
    moved("added again", true).await;
    s.delete_group("ops").await.expect("delete group");
    moved("the group deleted with its members", true).await;
    s.change_password(u.id, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3", now()).await.expect("password");
    moved("a password change", true).await;
    let disable = UserChange { disabled: Some(true), ..Default::default() };
    s.update_user(u.id, &disable, now()).await.expect("disable");
    moved("the user disabled", true).await;
    s.delete_user(u.id).await.expect("delete");
    moved("the user deleted", true).await;
}
