//! Newtype ids, so a key id can never be passed where a job id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A bulk job (AWS or Azure).
    JobId
);
uuid_id!(
    /// A key synchronization job.
    SyncJobId
);
uuid_id!(
    /// keyfleet's own id of a synced cloud key (the `id` of `/v1/cckm/aws/keys/{id}` and
    /// `/v1/cckm/azure/keys/{id}`), not the cloud's KeyId or key name.
    KeyId
);
uuid_id!(
    /// An AWS KMS container (one AWS account, some regions).
    KmsId
);
uuid_id!(
    /// A cloud connection (credentials and endpoints).
    ConnectionId
);
uuid_id!(
    /// A key-policy template.
    TemplateId
);
uuid_id!(
    /// An Azure key vault added to keyfleet (`/v1/cckm/azure/vaults/{id}`).
    VaultId
);
uuid_id!(
    /// A cloud key backup: a Key Vault backup blob keyfleet took and keeps
    /// (`/v1/cckm/azure/keys/{id}/backups/{backup_id}`).
    BackupId
);
uuid_id!(
    /// A local user; on the wire it appears as `local|<uuid>`.
    UserId
);
uuid_id!(
    /// A refresh token's public id (`refresh_token_id`).
    RefreshTokenId
);

impl UserId {
    /// The wire form CipherTrust uses in `sub` and `user_id`.
    pub fn wire(&self) -> String {
        format!("local|{self}")
    }

    /// Accepts both `local|<uuid>` and a bare uuid.
    pub fn parse_wire(s: &str) -> Option<Self> {
        s.strip_prefix("local|").unwrap_or(s).parse().ok()
    }
}

impl ConnectionId {
    /// Associated data binding an encrypted connection secret to its connection.
    pub fn secret_aad(&self) -> Vec<u8> {
        format!("connection:{self}").into_bytes()
    }
}

impl BackupId {
    /// Associated data binding an encrypted backup blob to its backup.
    pub fn blob_aad(&self) -> Vec<u8> {
        format!("key-backup:{self}").into_bytes()
    }
}
