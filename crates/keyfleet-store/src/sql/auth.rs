use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;

use super::{Backend, Db, Dialect, Fields, Query, conflict, list_page, order_by, row_by};
use crate::{AuthStore, Result};

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
        Query::<B::Db>::new(
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
        .bind(u.logins_count)
        .execute(self.writer())
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
        Query::<B::Db>::new("UPDATE users SET last_login = $1, logins_count = logins_count + 1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn change_password(&self, id: UserId, password_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        // One transaction: there is no moment where the new password works but old tokens still do.
        let mut tx = self.writer().begin().await?;
        let changed = Query::<B::Db>::new(
            "UPDATE users SET password_hash = $1, updated_at = $2, token_generation = token_generation + 1 \
             WHERE id = $3",
        )
        .bind(password_hash)
        .bind(at)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        Query::<B::Db>::new("UPDATE refresh_tokens SET revoked = true WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(changed > 0)
    }

    async fn user_groups(&self, id: UserId) -> Result<Vec<String>> {
        Query::new("SELECT group_name FROM group_members WHERE user_id = $1 ORDER BY group_name")
            .bind(id.to_string())
            .all(self.reader(), |r| r.text("group_name"))
            .await
    }

    async fn ensure_group(&self, name: &str, description: &str, at: DateTime<Utc>) -> Result<bool> {
        let added = Query::<B::Db>::new(
            "INSERT INTO groups (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(at)
        .execute(self.writer())
        .await?;
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

    async fn add_group_member(&self, group: &str, user: UserId) -> Result<()> {
        Query::<B::Db>::new("INSERT INTO group_members (group_name, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(group)
            .bind(user.to_string())
            .execute(self.writer())
            .await
            .map_err(|e| conflict(e, "group membership"))?;
        Ok(())
    }

    async fn remove_group_member(&self, group: &str, user: UserId) -> Result<bool> {
        let removed = Query::<B::Db>::new("DELETE FROM group_members WHERE group_name = $1 AND user_id = $2")
            .bind(group)
            .bind(user.to_string())
            .execute(self.writer())
            .await?;
        Ok(removed > 0)
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

    async fn revoke_refresh_token(&self, id: RefreshTokenId) -> Result<()> {
        Query::<B::Db>::new("UPDATE refresh_tokens SET revoked = true WHERE id = $1")
            .bind(id.to_string())
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
