use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;

use super::audit::{append, audited};
use super::{Backend, Db, Dialect, Fields, Query, conflict, list_page, order_by, row_by};
use crate::audit::event;
use crate::{AuthStore, Result};

/// The audit resource of a user: `user:<uuid>`.
fn user_resource(id: UserId) -> String {
    format!("user:{id}")
}

fn group_resource(name: &str) -> String {
    format!("group:{name}")
}

/// Raises the user's token generation and revokes every refresh token of the user, inside `tx`: every
/// access and refresh token issued before stops working, on every node, from the next request on.
async fn revoke_all_tokens<D: Db>(tx: &mut sqlx::Transaction<'_, D>, id: UserId) -> Result<()> {
    Query::<D>::new("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    Query::<D>::new("UPDATE refresh_tokens SET revoked = true WHERE user_id = $1 AND NOT revoked")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

fn user<D: Db>(r: Fields<'_, D>) -> Result<UserRecord> {
    Ok(UserRecord {
        id: r.parse("id")?,
        username: r.text("username")?,
        name: r.text("name")?,
        email: r.text("email")?,
        nickname: r.text("nickname")?,
        password_hash: r.text("password_hash")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        last_login: r.opt_ts("last_login")?,
        logins_count: r.int("logins_count")?,
        token_generation: r.int("token_generation")?,
        disabled: r.flag("disabled")?,
    })
}

fn group<D: Db>(r: Fields<'_, D>) -> Result<GroupRecord> {
    Ok(GroupRecord {
        name: r.text("name")?,
        description: r.text("description")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        users_count: r.int("users_count")?,
    })
}

fn refresh<D: Db>(r: Fields<'_, D>) -> Result<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        id: r.parse("id")?,
        user_id: r.parse("user_id")?,
        client_id: r.text("client_id")?,
        token_hash: r.text("token_hash")?,
        created_at: r.ts("created_at")?,
        expires_at: r.ts("expires_at")?,
        revoked: r.flag("revoked")?,
    })
}

fn value<D: Db>(r: Fields<'_, D>) -> Result<String> {
    r.text("value")
}

const GROUP_SELECT: &str = "SELECT g.name, g.description, g.created_at, g.updated_at, \
     (SELECT count(*) FROM group_members m WHERE m.group_name = g.name) AS users_count FROM groups g";

#[async_trait]
impl<B: Backend> AuthStore for B {
    async fn auth_epoch(&self) -> Result<u64> {
        Backend::auth_epoch(self).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Query::new("SELECT value FROM meta WHERE key = $1").bind(key).optional(self.reader(), value).await
    }

    async fn put_meta_if_absent(&self, key: &str, value: &str) -> Result<String> {
        Query::<B::Db>::new("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.writer())
            .await?;
        let row = Query::new("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(self.writer()).await?;
        Fields::<B::Db>(&row).text("value")
    }

    async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        let query = Query::<B::Db>::new(
            "INSERT INTO users (id, username, name, email, nickname, password_hash, created_at, updated_at, \
             last_login, logins_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(u.id.to_string())
        .bind(&u.username)
        .bind(&u.name)
        .bind(&u.email)
        .bind(&u.nickname)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.last_login)
        .bind(u.logins_count);
        let record = event("user.create", user_resource(u.id)).details(serde_json::json!({"username": u.username}));
        audited(self.writer(), query, record, false)
            .await
            .map_err(|e| conflict(e, &format!("user {:?}", u.username)))?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        row_by(self.reader(), "users", "username", username, user).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        row_by(self.reader(), "users", "id", id.to_string(), user).await
    }

    async fn list_users(&self, page: &Page) -> Result<(Vec<UserRecord>, u64)> {
        let columns = &[("created_at", "created_at"), ("username", "username"), ("user_id", "id")];
        let order = order_by(&page.sort, columns, "created_at ASC", B::Db::ROW_NO);
        list_page(self.reader(), "SELECT * FROM users", "SELECT count(*) AS n FROM users", |_| {}, order, page, user)
            .await
    }

    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<()> {
        let query =
            Query::<B::Db>::new("UPDATE users SET last_login = $1, logins_count = logins_count + 1 WHERE id = $2")
                .bind(at)
                .bind(id.to_string());
        audited(self.writer(), query, event("auth.login", user_resource(id)), false).await?;
        Ok(())
    }

    async fn change_password(&self, id: UserId, password_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        self.update_user(id, &UserChange { password_hash: Some(password_hash.into()), ..Default::default() }, at).await
    }

    async fn update_user(&self, id: UserId, change: &UserChange, at: DateTime<Utc>) -> Result<bool> {
        // One transaction: there is no moment where the new password works (or the user is disabled) but old
        // tokens still do, and none without the audit record.
        let mut tx = self.writer().begin().await?;
        let mut q = Query::<B::Db>::new("UPDATE users SET updated_at = ");
        q.push_bind(at);
        let mut changed = Vec::new();
        for (column, value) in [
            ("password_hash", &change.password_hash),
            ("name", &change.name),
            ("email", &change.email),
            ("nickname", &change.nickname),
        ] {
            if let Some(v) = value {
                q.push(&format!(", {column} = ")).push_bind(v);
                changed.push(column);
            }
        }
        if let Some(disabled) = change.disabled {
            q.push(", disabled = ").push_bind(disabled);
            changed.push(if disabled { "disabled" } else { "enabled" });
        }
        q.push(" WHERE id = ").push_bind(id.to_string());
        if q.execute(&mut tx).await? == 0 {
            return Ok(false);
        }
        if change.revokes_tokens() {
            revoke_all_tokens(&mut tx, id).await?;
        }
        let action = if changed == ["password_hash"] { "user.password" } else { "user.update" };
        let record = event(action, user_resource(id))
            .details(serde_json::json!({"changed": changed, "tokens_revoked": change.revokes_tokens()}));
        append(&mut tx, &record).await?;
        tx.commit().await?;
        self.auth_changed();
        Ok(true)
    }

    async fn delete_user(&self, id: UserId) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        // ACL entries name users by id without a reference; the user's memberships and refresh tokens go with
        // the row (ON DELETE CASCADE).
        Query::<B::Db>::new("DELETE FROM acls WHERE principal_kind = 'user' AND principal = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        let deleted =
            Query::<B::Db>::new("DELETE FROM users WHERE id = $1").bind(id.to_string()).execute(&mut tx).await?;
        if deleted == 0 {
            return Ok(false);
        }
        append(&mut tx, &event("user.delete", user_resource(id))).await?;
        tx.commit().await?;
        self.auth_changed();
        Ok(true)
    }

    async fn user_groups(&self, id: UserId) -> Result<Vec<String>> {
        Query::new("SELECT group_name FROM group_members WHERE user_id = $1 ORDER BY group_name")
            .bind(id.to_string())
            .all(self.reader(), |r| r.text("group_name"))
            .await
    }

    async fn ensure_group(&self, name: &str, description: &str, at: DateTime<Utc>) -> Result<bool> {
        let query = Query::<B::Db>::new(
            "INSERT INTO groups (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(at);
        let added = audited(self.writer(), query, event("group.create", group_resource(name)), true).await?;
        Ok(added == 1)
    }

    async fn get_group(&self, name: &str) -> Result<Option<GroupRecord>> {
        Query::new(format!("{GROUP_SELECT} WHERE g.name = $1")).bind(name).optional(self.reader(), group).await
    }

    async fn list_groups(&self, page: &Page) -> Result<(Vec<GroupRecord>, u64)> {
        let row_no = format!("g.{}", B::Db::ROW_NO);
        let order = order_by(&page.sort, &[("name", "g.name"), ("createdAt", "g.created_at")], "g.name ASC", &row_no);
        list_page(self.reader(), GROUP_SELECT, "SELECT count(*) AS n FROM groups", |_| {}, order, page, group).await
    }

    async fn update_group(&self, name: &str, description: &str, at: DateTime<Utc>) -> Result<bool> {
        let query = Query::<B::Db>::new("UPDATE groups SET description = $1, updated_at = $2 WHERE name = $3")
            .bind(description)
            .bind(at)
            .bind(name);
        let record =
            event("group.update", group_resource(name)).details(serde_json::json!({"changed": ["description"]}));
        Ok(audited(self.writer(), query, record, true).await? > 0)
    }

    async fn delete_group(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        // Memberships go with the row (ON DELETE CASCADE); ACL entries name groups without a reference.
        Query::<B::Db>::new("DELETE FROM acls WHERE principal_kind = 'group' AND principal = $1")
            .bind(name)
            .execute(&mut tx)
            .await?;
        if Query::<B::Db>::new("DELETE FROM groups WHERE name = $1").bind(name).execute(&mut tx).await? == 0 {
            return Ok(false);
        }
        append(&mut tx, &event("group.delete", group_resource(name))).await?;
        tx.commit().await?;
        self.auth_changed();
        Ok(true)
    }

    async fn add_group_member(&self, group: &str, user: UserId) -> Result<()> {
        let query = Query::<B::Db>::new(
            "INSERT INTO group_members (group_name, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(group)
        .bind(user.to_string());
        let record =
            event("group.member.add", group_resource(group)).details(serde_json::json!({"user_id": user.to_string()}));
        audited(self.writer(), query, record, true).await.map_err(|e| conflict(e, "group membership"))?;
        self.auth_changed();
        Ok(())
    }

    async fn remove_group_member(&self, group: &str, user: UserId) -> Result<bool> {
        let query = Query::<B::Db>::new("DELETE FROM group_members WHERE group_name = $1 AND user_id = $2")
            .bind(group)
            .bind(user.to_string());
        let record = event("group.member.remove", group_resource(group))
            .details(serde_json::json!({"user_id": user.to_string()}));
        let removed = audited(self.writer(), query, record, true).await? > 0;
        self.auth_changed();
        Ok(removed)
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord) -> Result<()> {
        Query::<B::Db>::new(
            "INSERT INTO refresh_tokens (id, user_id, client_id, token_hash, created_at, expires_at, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.id.to_string())
        .bind(t.user_id.to_string())
        .bind(&t.client_id)
        .bind(&t.token_hash)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.revoked)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn refresh_token_by_hash(&self, hash: &str) -> Result<Option<RefreshTokenRecord>> {
        row_by(self.reader(), "refresh_tokens", "token_hash", hash, refresh).await
    }

    async fn refresh_token_by_id(&self, id: RefreshTokenId) -> Result<Option<RefreshTokenRecord>> {
        row_by(self.reader(), "refresh_tokens", "id", id.to_string(), refresh).await
    }

    async fn list_refresh_tokens(
        &self,
        user: UserId,
        at: DateTime<Utc>,
        page: &Page,
    ) -> Result<(Vec<RefreshTokenRecord>, u64)> {
        let filter = |q: &mut Query<B::Db>| {
            q.push(" WHERE NOT revoked AND user_id = ").push_bind(user.to_string());
            q.push(" AND expires_at > ").push_bind(at);
        };
        let columns = &[("createdAt", "created_at"), ("expires_at", "expires_at"), ("id", "id")];
        let order = order_by(&page.sort, columns, "created_at ASC", "id");
        list_page(
            self.reader(),
            "SELECT * FROM refresh_tokens",
            "SELECT count(*) AS n FROM refresh_tokens",
            filter,
            order,
            page,
            refresh,
        )
        .await
    }

    async fn revoke_refresh_token(&self, id: RefreshTokenId) -> Result<bool> {
        let query = Query::<B::Db>::new("UPDATE refresh_tokens SET revoked = true WHERE id = $1 AND NOT revoked")
            .bind(id.to_string());
        Ok(audited(self.writer(), query, event("auth.token.revoke", format!("refresh-token:{id}")), true).await? > 0)
    }
}
