//! From AWS key ids to ready clients: key → KMS container → connection (secret decrypted) → SDK client. A
//! claim's items are resolved together: one read of their keys, then one of each distinct container with its
//! connection beside it, and clients from the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use keyfleet_clouds::{AwsCredentials, AwsKms};
use keyfleet_core::*;

use crate::EngineError;
use crate::resolve::Resolver;

/// Containers whose connection [`Resolver::aws_route`] remembers, at most.
const MAX_KNOWN_CONTAINERS: usize = 10_000;

/// A key and the means to act on it.
pub struct AwsTarget {
    pub key: AwsKeyRecord,
    pub via: Arc<AwsRoute>,
}

/// A KMS container, its connection and a client for one region: shared by the items of a claim that reach
/// their keys through them.
pub struct AwsRoute {
    pub account: String,
    /// The container's quota overrides (requests/s per action).
    pub quotas: BTreeMap<String, f64>,
    pub connection_id: ConnectionId,
    pub connection_name: String,
    pub client: Arc<dyn AwsKms>,
}

impl Resolver {
    /// The targets of `ids`, in their order: `Err` names what is gone (the key, its container or its
    /// connection). Reads the keys at once, then each distinct container and its connection once.
    pub async fn aws_keys(&self, ids: &[KeyId]) -> Result<Vec<Result<AwsTarget, String>>, EngineError> {
        let mut keys: HashMap<KeyId, AwsKeyRecord> =
            self.store.get_aws_keys(ids).await?.into_iter().map(|k| (k.id, k)).collect();
        let mut routes: HashMap<(KmsId, String), Result<Arc<AwsRoute>, String>> = HashMap::new();
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            // The same key twice in one claim (two jobs over one key) is rare: clone only then.
            let key = if ids[i + 1..].contains(id) { keys.get(id).cloned() } else { keys.remove(id) };
            let Some(key) = key else {
                out.push(Err(format!("key {id} is not in the inventory")));
                continue;
            };
            let place = (key.kms_id, key.region.clone());
            let route = match routes.get(&place) {
                Some(r) => r.clone(),
                None => {
                    let r = self.aws_route(key.kms_id, &key.region).await?.map(Arc::new);
                    routes.insert(place, r.clone());
                    r
                }
            };
            out.push(route.map(|via| AwsTarget { key, via }));
        }
        Ok(out)
    }

    /// A container's route to `region`; `Err` names what was deleted. The container and the connection it
    /// had when last read are read side by side (one round trip instead of two); the connection is read again
    /// after the container only when the container names another one now.
    async fn aws_route(&self, kms_id: KmsId, region: &str) -> Result<Result<AwsRoute, String>, EngineError> {
        let known = self.kms_connections.lock().unwrap_or_else(|e| e.into_inner()).get(&kms_id).copied();
        let (kms, guessed) = match known {
            Some(c) => futures::try_join!(self.store.get_kms(kms_id), self.store.get_aws_connection(c))?,
            None => (self.store.get_kms(kms_id).await?, None),
        };
        let Some(kms) = kms else {
            return Ok(Err(format!("KMS container {kms_id} was deleted")));
        };
        let conn = match guessed {
            Some(conn) if conn.id == kms.connection_id => Some(conn),
            _ => self.store.get_aws_connection(kms.connection_id).await?,
        };
        let Some(conn) = conn else {
            return Ok(Err(format!("connection of KMS container {} was deleted", kms.name)));
        };
        if known != Some(conn.id) {
            let mut known = self.kms_connections.lock().unwrap_or_else(|e| e.into_inner());
            if known.len() >= MAX_KNOWN_CONTAINERS {
                known.clear(); // only a guess: the next read of each container is one round trip longer
            }
            known.insert(kms_id, conn.id);
        }
        let client = self.aws_client_of(&conn, region)?;
        Ok(Ok(AwsRoute {
            account: kms.account_id,
            quotas: kms.quotas,
            connection_id: kms.connection_id,
            connection_name: conn.name,
            client,
        }))
    }

    pub async fn aws_client(&self, kms: &KmsRecord, region: &str) -> Result<Arc<dyn AwsKms>, EngineError> {
        let conn = self
            .store
            .get_aws_connection(kms.connection_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("connection of KMS container {} was deleted", kms.name)))?;
        self.aws_client_of(&conn, region)
    }

    /// The cached client of this version of the connection in `region`, or a new one.
    fn aws_client_of(&self, conn: &AwsConnectionRecord, region: &str) -> Result<Arc<dyn AwsKms>, EngineError> {
        let cache_key = (conn.id, conn.updated_at.timestamp_micros(), region.to_string());
        if let Some(c) = self.clients.get(&cache_key) {
            return Ok(c);
        }
        let creds = AwsCredentials {
            access_key_id: conn.access_key_id.clone(),
            secret_access_key: self.secret(conn.id, &conn.secret_enc)?,
            endpoint_url: conn.endpoint_url.clone(),
        };
        let client = self.connector.connect(&creds, region);
        self.clients.insert(cache_key, client.clone());
        Ok(client)
    }
}
