use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::*;
use crate::{AuthStore, Result};

fn user(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: parse(row, "id")?,
        username: row.try_get("username")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        nickname: row.try_get("nickname")?,
        password_hash: row.try_get("password_hash")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        last_login: get_opt_ts(row, "last_login")?,
        logins_count: row.try_get("logins_count")?,
    })
}

fn group(row: &PgRow) -> Result<GroupRecord> {
    Ok(GroupRecord {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        users_count: row.try_get("users_count")?,
    })
}

fn refresh(row: &PgRow) -> Result<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        id: parse(row, "id")?,
        user_id: parse(row, "user_id")?,
        client_id: row.try_get("client_id")?,
        token_hash: row.try_get("token_hash")?,
        created_at: get_ts(row, "created_at")?,
        expires_at: get_ts(row, "expires_at")?,
        revoked: row.try_get("revoked")?,
    })
}

const GROUP_SELECT: &str = "SELECT g.name, g.description, g.created_at, g.updated_at, \
     (SELECT count(*) FROM group_members m WHERE m.group_name = g.name) AS users_count FROM groups g";

#[async_trait]
impl AuthStore for PgStore {
    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?)
    }

    async fn put_meta_if_absent(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(&self.pool).await?)
    }

    async fn insert_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, username, name, email, nickname, password_hash, created_at, updated_at, \
             last_login, logins_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(u.id.to_string())
        .bind(&u.username)
        .bind(&u.name)
        .bind(&u.email)
        .bind(&u.nickname)
        .bind(&u.password_hash)
        .bind(ts(u.created_at))
        .bind(ts(u.updated_at))
        .bind(u.last_login.map(ts))
        .bind(u.logins_count)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("user {:?}", u.username)))?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn list_users(&self, page: &Page) -> Result<(Vec<UserRecord>, u64)> {
        let order = order_by(
            &page.sort,
            &[("created_at", "created_at"), ("username", "username"), ("user_id", "id")],
            "created_at ASC",
            "row_no",
        );
        let sql = format!("SELECT * FROM users{order}{}", limit_offset(page));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&self.pool).await?;
        Ok((rows.iter().map(user).collect::<Result<_>>()?, total as u64))
    }

    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE users SET last_login = $1, logins_count = logins_count + 1 WHERE id = $2")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn user_groups(&self, id: UserId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT group_name FROM group_members WHERE user_id = $1 ORDER BY group_name")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?)
    }

    async fn ensure_group(&self, name: &str, description: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO groups (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(ts(at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_group(&self, name: &str) -> Result<Option<GroupRecord>> {
        let sql = format!("{GROUP_SELECT} WHERE g.name = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(group)
            .transpose()
    }

    async fn list_groups(&self, page: &Page) -> Result<(Vec<GroupRecord>, u64)> {
        let order =
            order_by(&page.sort, &[("name", "g.name"), ("createdAt", "g.created_at")], "g.name ASC", "g.row_no");
        let sql = format!("{GROUP_SELECT}{order}{}", limit_offset(page));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM groups").fetch_one(&self.pool).await?;
        Ok((rows.iter().map(group).collect::<Result<_>>()?, total as u64))
    }

    async fn add_group_member(&self, group: &str, user: UserId) -> Result<()> {
        sqlx::query("INSERT INTO group_members (group_name, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(group)
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, "group membership"))?;
        Ok(())
    }

    async fn remove_group_member(&self, group: &str, user: UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM group_members WHERE group_name = $1 AND user_id = $2")
            .bind(group)
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, client_id, token_hash, created_at, expires_at, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.id.to_string())
        .bind(t.user_id.to_string())
        .bind(&t.client_id)
        .bind(&t.token_hash)
        .bind(ts(t.created_at))
        .bind(ts(t.expires_at))
        .bind(t.revoked)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn refresh_token_by_hash(&self, hash: &str) -> Result<Option<RefreshTokenRecord>> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(refresh)
            .transpose()
    }

    async fn revoke_refresh_token(&self, id: RefreshTokenId) -> Result<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked = true WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
