//! From an item's key to a ready client. The per-cloud steps live in `aws/resolve.rs` and
//! `azure/resolve.rs`; here: what they share (the store, the master key, the client cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyfleet_clouds::{AwsKms, AwsKmsConnector, KeyVault, KeyVaultConnector};
use keyfleet_core::crypto::MasterKey;
use keyfleet_core::{ConnectionId, KmsId};
use secrecy::SecretString;

use crate::EngineError;
use crate::store::EngineStore;

/// A cached client's key: the connection, its `updated_at` (an edited connection gets a fresh client) and
/// where the client points (an AWS region, a vault URL).
pub(crate) type ClientKey = (ConnectionId, i64, String);

/// Clients reused across items, one per connection version and place.
pub(crate) struct ClientCache<C: ?Sized> {
    clients: Mutex<HashMap<ClientKey, Arc<C>>>,
}

impl<C: ?Sized> ClientCache<C> {
    pub fn new() -> Self {
        Self { clients: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &ClientKey) -> Option<Arc<C>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Caches `client`, dropping the clients of older versions of the same connection.
    pub fn insert(&self, key: ClientKey, client: Arc<C>) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|(c, updated, _), _| *c != key.0 || *updated == key.1);
        clients.insert(key, client);
    }
}

pub(crate) struct Resolver {
    pub store: Arc<dyn EngineStore>,
    pub master: MasterKey,
    pub connector: Arc<dyn AwsKmsConnector>,
    pub azure: Arc<dyn KeyVaultConnector>,
    pub clients: ClientCache<dyn AwsKms>,
    pub vault_clients: ClientCache<dyn KeyVault>,
    /// The connection each KMS container had when last read (`aws/resolve.rs`): the next read of the
    /// container reads that connection beside it instead of after it.
    pub kms_connections: Mutex<HashMap<KmsId, ConnectionId>>,
}

impl Resolver {
    /// A connection's secret, decrypted.
    pub fn secret(&self, connection: ConnectionId, secret_enc: &[u8]) -> Result<SecretString, EngineError> {
        let secret = self.master.decrypt(secret_enc, &connection.secret_aad())?;
        String::from_utf8(secret)
            .map(SecretString::from)
            .map_err(|_| EngineError::Missing("connection secret is not UTF-8".into()))
    }
}
