//! Users, groups and membership (`/v1/usermgmt/...`), and the password hashing they rely on.

use std::cell::RefCell;

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use keyfleet_api_types::usermgmt::{CreateGroupRequest, CreateUserRequest, UpdateGroupRequest, UpdateUserRequest};
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::authz::{GROUP_ADMIN, GROUP_CCKM_ADMINS, GROUP_CCKM_USERS};
use crate::{Caller, Result, ServiceError, Services};

/// The groups CCKM's rules refer to; they always exist.
pub const BUILTIN_GROUPS: &[(&str, &str)] = &[
    (GROUP_ADMIN, "Administrators: may do everything"),
    (GROUP_CCKM_ADMINS, "May do everything in CCKM"),
    (GROUP_CCKM_USERS, "May act on the containers whose ACLs grant it"),
];

/// Argon2id with the crate's default (OWASP) parameters. CPU-heavy (and 19 MiB each): callers run it
/// through the services' [`crate::login_guard::HashPool`].
fn hash_password_blocking(password: &str) -> Result<String> {
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| ServiceError::Internal("random generator failed".into()))?;
    let salt = SaltString::encode_b64(&raw).map_err(|e| ServiceError::Internal(format!("salt: {e}")))?;
    let params = Params::default();
    let hash = argon2_output(Algorithm::Argon2id, Version::V0x13, &params, password.as_bytes(), &raw)
        .map_err(|e| ServiceError::Internal(format!("hashing password: {e}")))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| ServiceError::Internal(format!("params: {e}")))?,
        salt: Some(salt.as_salt()),
        hash: Some(hash),
    };
    Ok(phc.to_string())
}

fn verify_password_blocking(password: &str, hash: &str) -> bool {
    let check = || -> std::result::Result<bool, password_hash::Error> {
        let parsed = PasswordHash::new(hash)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        // `Output`'s equality is constant-time.
        Ok(argon2_output(algorithm, version, &params, password.as_bytes(), salt)? == expected)
    };
    check().unwrap_or(false)
}

thread_local! {
    /// The argon2 working memory of this (hashing) thread, reused by every hash of a burst. Allocating
    /// 19 MiB per hash made the allocator keep ever more of them: 20 logins in a row left 210 MiB resident.
    static ARGON2_BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's argon2 working memory (the hashing pool calls it when its queue runs empty).
pub(crate) fn release_hash_memory() {
    ARGON2_BLOCKS.with_borrow_mut(|blocks| *blocks = Vec::new());
}

/// The raw argon2 output for `password` and `salt`, computed in this thread's reused working memory.
fn argon2_output(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
) -> std::result::Result<Output, password_hash::Error> {
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    ARGON2_BLOCKS.with_borrow_mut(|blocks| {
        blocks.resize(params.block_count(), Block::default());
        let argon2 = Argon2::new(algorithm, version, params.clone());
        Output::init_with(len, |out| Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..])?))
    })
}

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Passwords long enough for the length rule that still top the breach lists; compared case-insensitively.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456123456",
    "111111111111",
    "000000000000",
    "123123123123",
    "qwertyuiop12",
    "qwertyuiopasdf",
    "qwerty123456",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "asdfghjkl123",
    "zxcvbnm12345",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "password123!",
    "p@ssw0rd1234",
    "p@ssword1234",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "welcome@1234",
    "changeme1234",
    "changemenow!",
    "administrator",
    "administrator1",
    "admin1234567",
    "adminadmin123",
    "admin@123456",
    "superman1234",
    "trustno11234",
    "monkey123456",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "starwars1234",
    "dragon123456",
    "master123456",
    "whatever1234",
    "abcdefghijkl",
    "abc123abc123",
    "aaaaaaaaaaaa",
    "correcthorsebatterystaple",
    "keyfleet1234",
    "keyfleetadmin",
    "ciphertrust1",
    "ciphertrust123",
];

/// The password policy of every new password (user creation, change, the admin bootstrap): at least
/// [`MIN_PASSWORD_CHARS`] characters, not the username, not one of a list of common passwords.
pub fn check_password_policy(username: &str, password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::invalid("password", format!("must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    let lower = password.to_lowercase();
    if lower == username.to_lowercase() {
        return Err(ServiceError::invalid("password", "must not be the username"));
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(ServiceError::invalid("password", "is a commonly used password; choose another"));
    }
    Ok(())
}

impl Services {
    /// Hashes a password in the bounded hashing pool.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        self.hash_pool.run(move || hash_password_blocking(&password)).await?
    }

    /// Checks a password against a stored hash in the bounded hashing pool.
    pub async fn verify_password(&self, password: String, hash: String) -> Result<bool> {
        self.hash_pool.run(move || verify_password_blocking(&password, &hash)).await
    }

    /// Creates the built-in groups and, on first start, the `admin` user. Returns true when `admin` was
    /// created now.
    pub async fn bootstrap(&self, admin_password: &str) -> Result<bool> {
        for (name, description) in BUILTIN_GROUPS {
            self.store.ensure_group(name, description, now()).await?;
        }
        if self.store.user_by_name("admin").await?.is_some() {
            return Ok(false);
        }
        check_password_policy("admin", admin_password)?;
        let user = self
            .new_user("admin".into(), admin_password.to_string(), "Administrator".into(), String::new(), String::new())
            .await?;
        self.store.insert_user(&user).await?;
        self.store.add_group_member(GROUP_ADMIN, user.id).await?;
        Ok(true)
    }

    async fn new_user(
        &self,
        username: String,
        password: String,
        name: String,
        email: String,
        nickname: String,
    ) -> Result<UserRecord> {
        let password_hash = self.hash_password(password).await?;
        Ok(UserRecord { name, email, nickname, ..UserRecord::new(username, password_hash, now()) })
    }

    pub async fn create_user(&self, caller: &Caller, req: CreateUserRequest) -> Result<(UserRecord, Vec<String>)> {
        caller.require_admin()?;
        let username = req.username.unwrap_or_default();
        if username.is_empty() || username.len() > 128 || username.chars().any(|c| c.is_control() || c == '|') {
            return Err(ServiceError::invalid("username", "is required: 1-128 printable characters, no '|'"));
        }
        let password = req.password.unwrap_or_default();
        check_password_policy(&username, &password)?;
        let user = self
            .new_user(
                username,
                password,
                req.name.unwrap_or_default(),
                req.email.unwrap_or_default(),
                req.nickname.unwrap_or_default(),
            )
            .await?;
        self.store.insert_user(&user).await?;
        Ok((user, Vec::new()))
    }

    pub async fn get_user(&self, caller: &Caller, id: &str) -> Result<(UserRecord, Vec<String>)> {
        let uid = UserId::parse_wire(id).ok_or_else(|| ServiceError::not_found("user", id))?;
        if uid != caller.user_id {
            caller.require_admin()?;
        }
        let user = self.store.user_by_id(uid).await?.ok_or_else(|| ServiceError::not_found("user", id))?;
        let groups = self.store.user_groups(uid).await?;
        Ok((user, groups))
    }

    /// `PATCH /v1/usermgmt/users/{id}` (admins). A new password or `disabled: true` ends every session of the
    /// user at once, on every node.
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: &str,
        req: UpdateUserRequest,
    ) -> Result<(UserRecord, Vec<String>)> {
        caller.require_admin()?;
        let uid = UserId::parse_wire(id).ok_or_else(|| ServiceError::not_found("user", id))?;
        let user = self.store.user_by_id(uid).await?.ok_or_else(|| ServiceError::not_found("user", id))?;
        if req.disabled == Some(true) && uid == caller.user_id {
            return Err(ServiceError::invalid("disabled", "you cannot disable yourself"));
        }
        let password_hash = match req.password {
            Some(p) => {
                check_password_policy(&user.username, &p)?;
                Some(self.hash_password(p).await?)
            }
            None => None,
        };
        let change = UserChange {
            password_hash,
            name: req.name,
            email: req.email,
            nickname: req.nickname,
            disabled: req.disabled,
        };
        if !self.store.update_user(uid, &change, now()).await? {
            return Err(ServiceError::not_found("user", id));
        }
        if change.revokes_tokens() {
            tracing::info!(user.name = %user.username, "user changed by an admin; every token of the user revoked");
        }
        self.get_user(caller, id).await
    }

    /// `DELETE /v1/usermgmt/users/{id}` (admins): the user, their memberships, refresh tokens and ACL entries.
    pub async fn delete_user(&self, caller: &Caller, id: &str) -> Result<()> {
        caller.require_admin()?;
        let uid = UserId::parse_wire(id).ok_or_else(|| ServiceError::not_found("user", id))?;
        if uid == caller.user_id {
            return Err(ServiceError::Conflict("you cannot delete yourself".into()));
        }
        if !self.store.delete_user(uid).await? {
            return Err(ServiceError::not_found("user", id));
        }
        Ok(())
    }

    pub async fn list_users(&self, caller: &Caller, page: &Page) -> Result<(Vec<(UserRecord, Vec<String>)>, u64)> {
        caller.require_admin()?;
        let (users, total) = self.store.list_users(page).await?;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let groups = self.store.user_groups(u.id).await?;
            out.push((u, groups));
        }
        Ok((out, total))
    }

    pub async fn create_group(&self, caller: &Caller, req: CreateGroupRequest) -> Result<GroupRecord> {
        caller.require_admin()?;
        let name = req.name.unwrap_or_default();
        if name.trim().is_empty() || name.len() > 128 {
            return Err(ServiceError::invalid("name", "is required: 1-128 characters"));
        }
        if !self.store.ensure_group(&name, &req.description.unwrap_or_default(), now()).await? {
            return Err(ServiceError::Conflict(format!("group {name:?} already exists")));
        }
        self.store.get_group(&name).await?.ok_or_else(|| ServiceError::Internal("group vanished".into()))
    }

    pub async fn get_group(&self, caller: &Caller, name: &str) -> Result<GroupRecord> {
        caller.require_cckm_user()?;
        self.store.get_group(name).await?.ok_or_else(|| ServiceError::not_found("group", name))
    }

    /// `PATCH /v1/usermgmt/groups/{name}` (admins): the description.
    pub async fn update_group(&self, caller: &Caller, name: &str, req: UpdateGroupRequest) -> Result<GroupRecord> {
        caller.require_admin()?;
        let description = req.description.ok_or_else(|| ServiceError::invalid("description", "is required"))?;
        if !self.store.update_group(name, &description, now()).await? {
            return Err(ServiceError::not_found("group", name));
        }
        self.get_group(caller, name).await
    }

    /// `DELETE /v1/usermgmt/groups/{name}` (admins): the group, its memberships and ACL entries. The built-in
    /// groups stay.
    pub async fn delete_group(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require_admin()?;
        if BUILTIN_GROUPS.iter().any(|(g, _)| *g == name) {
            return Err(ServiceError::Conflict(format!("group {name:?} is built in and cannot be deleted")));
        }
        if !self.store.delete_group(name).await? {
            return Err(ServiceError::not_found("group", name));
        }
        Ok(())
    }

    pub async fn list_groups(&self, caller: &Caller, page: &Page) -> Result<(Vec<GroupRecord>, u64)> {
        caller.require_cckm_user()?;
        Ok(self.store.list_groups(page).await?)
    }

    pub async fn add_user_to_group(&self, caller: &Caller, group: &str, user_id: &str) -> Result<GroupRecord> {
        caller.require_admin()?;
        let g = self.store.get_group(group).await?.ok_or_else(|| ServiceError::not_found("group", group))?;
        let uid = UserId::parse_wire(user_id).ok_or_else(|| ServiceError::not_found("user", user_id))?;
        self.store.user_by_id(uid).await?.ok_or_else(|| ServiceError::not_found("user", user_id))?;
        self.store.add_group_member(&g.name, uid).await?;
        self.store.get_group(group).await?.ok_or_else(|| ServiceError::not_found("group", group))
    }

    pub async fn remove_user_from_group(&self, caller: &Caller, group: &str, user_id: &str) -> Result<()> {
        caller.require_admin()?;
        let uid = UserId::parse_wire(user_id).ok_or_else(|| ServiceError::not_found("user", user_id))?;
        // As with deleting or disabling oneself: an admin who leaves `admin` may leave the service with none.
        if group == GROUP_ADMIN && uid == caller.user_id {
            return Err(ServiceError::Conflict("you cannot remove yourself from the admin group".into()));
        }
        if !self.store.remove_group_member(group, uid).await? {
            return Err(ServiceError::NotFound(format!("user {user_id} is not in group {group}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_are_standard_phc_argon2id_and_verify_both_ways() {
        let ours = hash_password_blocking("correct horse battery").expect("hash");
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        // The argon2 crate's own verifier accepts our hash ...
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        // ... and ours accepts a hash it made (stored before the working memory was reused).
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let theirs = Argon2::default().hash_password(b"correct horse battery", &salt).expect("hash").to_string();
        assert!(verify_password_blocking("correct horse battery", &theirs));
        assert!(verify_password_blocking("correct horse battery", &ours));
        assert!(!verify_password_blocking("correct horse batterz", &ours));
        assert!(!verify_password_blocking("correct horse battery", "not a phc string"));
        // Two hashes of one password differ (fresh salt), and reusing the memory leaks nothing between them.
        assert_ne!(ours, hash_password_blocking("correct horse battery").expect("hash"));
    }
}
