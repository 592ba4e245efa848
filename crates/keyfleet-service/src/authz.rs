//! Who may do what. `admin` and `CCKM Admins` may do everything in CCKM; a `CCKM Users` member only what an
//! ACL on the container grants; everyone else nothing.

use keyfleet_api_types::common::UpdateAclsRequest;
use keyfleet_core::*;

use crate::{Result, ServiceError, Services};

pub const GROUP_ADMIN: &str = "admin";
pub const GROUP_CCKM_ADMINS: &str = "CCKM Admins";
pub const GROUP_CCKM_USERS: &str = "CCKM Users";

/// ACL actions CCKM defines on containers.
pub const ACL_ACTIONS: &[&str] = &[
    "keybulkoperation",
    "keycreate",
    "keyupdate",
    "keydelete",
    "keycanceldelete",
    "keysynchronize",
    "viewnative",
    "keyupload",
    "keytagupdate",
];

/// The authenticated user of a request, with the groups read from the database at request time.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub user_id: UserId,
    pub username: String,
    pub groups: Vec<String>,
}

impl Caller {
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    pub fn is_admin(&self) -> bool {
        self.in_group(GROUP_ADMIN)
    }

    pub fn is_cckm_admin(&self) -> bool {
        self.is_admin() || self.in_group(GROUP_CCKM_ADMINS)
    }

    pub fn is_cckm_user(&self) -> bool {
        self.is_cckm_admin() || self.in_group(GROUP_CCKM_USERS)
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() { Ok(()) } else { Err(forbidden(self, "user management needs the admin group")) }
    }

    pub fn require_cckm_admin(&self) -> Result<()> {
        if self.is_cckm_admin() { Ok(()) } else { Err(forbidden(self, "this needs membership in CCKM Admins")) }
    }

    pub fn require_cckm_user(&self) -> Result<()> {
        if self.is_cckm_user() {
            Ok(())
        } else {
            Err(forbidden(self, "this needs membership in CCKM Users or CCKM Admins"))
        }
    }
}

fn forbidden(c: &Caller, why: &str) -> ServiceError {
    ServiceError::Forbidden(format!("user {} is not allowed: {why}", c.username))
}

impl Services {
    /// Does `caller` hold `action` on the container through its own or a group's ACL entry?
    pub async fn holds(&self, caller: &Caller, resource: AclResource, action: &str) -> Result<bool> {
        if caller.is_cckm_admin() {
            return Ok(true);
        }
        if !caller.in_group(GROUP_CCKM_USERS) {
            return Ok(false);
        }
        let acls = self.store.acls(resource).await?;
        Ok(acls.iter().any(|e| {
            let mine = match &e.principal {
                Principal::User(u) => *u == caller.user_id,
                Principal::Group(g) => caller.in_group(g),
            };
            mine && e.actions.iter().any(|a| a == action)
        }))
    }

    /// 403 naming the first key whose container does not grant `action`.
    pub async fn require_on_keys(&self, caller: &Caller, keys: &[AwsKeyRecord], action: &str) -> Result<()> {
        caller.require_cckm_user()?;
        if caller.is_cckm_admin() {
            return Ok(());
        }
        let mut granted: std::collections::HashMap<KmsId, bool> = Default::default();
        for key in keys {
            let ok = match granted.get(&key.kms_id) {
                Some(ok) => *ok,
                None => {
                    let ok = self.holds(caller, AclResource::AwsKms(key.kms_id), action).await?;
                    granted.insert(key.kms_id, ok);
                    ok
                }
            };
            if !ok {
                return Err(ServiceError::Forbidden(format!(
                    "user {} lacks {action} on the KMS container of key {}",
                    caller.username, key.id
                )));
            }
        }
        Ok(())
    }

    /// Validates every change of an `update-acls` request, then applies them; returns the resource's ACL.
    pub(crate) async fn apply_acl_changes(
        &self,
        resource: AclResource,
        req: UpdateAclsRequest,
    ) -> Result<Vec<AclEntry>> {
        if req.acls.is_empty() {
            return Err(ServiceError::invalid("acls", "at least one entry is required"));
        }
        // Validate everything before writing anything.
        let mut changes = Vec::new();
        for (i, acl) in req.acls.iter().enumerate() {
            let principal = match (&acl.user_id, &acl.group) {
                (Some(u), None) => {
                    let uid = UserId::parse_wire(u)
                        .ok_or_else(|| ServiceError::invalid(&format!("acls[{i}].user_id"), "must be local|<uuid>"))?;
                    self.store
                        .user_by_id(uid)
                        .await?
                        .ok_or_else(|| ServiceError::invalid(&format!("acls[{i}].user_id"), format!("no user {u}")))?;
                    Principal::User(uid)
                }
                (None, Some(g)) => {
                    self.store
                        .get_group(g)
                        .await?
                        .ok_or_else(|| ServiceError::invalid(&format!("acls[{i}].group"), format!("no group {g:?}")))?;
                    Principal::Group(g.clone())
                }
                _ => {
                    return Err(ServiceError::invalid(
                        &format!("acls[{i}]"),
                        "exactly one of user_id and group is required",
                    ));
                }
            };
            if acl.actions.is_empty() {
                return Err(ServiceError::invalid(&format!("acls[{i}].actions"), "at least one action is required"));
            }
            if let Some(bad) = acl.actions.iter().find(|a| !ACL_ACTIONS.contains(&a.as_str())) {
                return Err(ServiceError::invalid(
                    &format!("acls[{i}].actions"),
                    format!("unknown action {bad:?}; known: {}", ACL_ACTIONS.join(", ")),
                ));
            }
            changes.push((principal, acl.permit, acl.actions.clone()));
        }
        for (principal, permit, actions) in changes {
            let current = self.store.acls(resource).await?;
            let mut have: Vec<String> =
                current.into_iter().find(|e| e.principal == principal).map(|e| e.actions).unwrap_or_default();
            if permit {
                for a in actions {
                    if !have.contains(&a) {
                        have.push(a);
                    }
                }
            } else {
                have.retain(|a| !actions.contains(a));
            }
            have.sort();
            self.store.set_acl(resource, &principal, &have).await?;
        }
        Ok(self.store.acls(resource).await?)
    }
}
