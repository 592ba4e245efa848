//! PLACEHOLDER — replaced by the REST implementation.

use std::sync::Arc;

use async_trait::async_trait;

use super::*;
use crate::error::{CloudError, ErrorKind};

/// Key Vault over HTTPS with reqwest; Entra ID client-credentials tokens cached per application.
#[derive(Clone)]
pub struct RestConnector {}

impl RestConnector {
    /// `extra_roots_pem`: CA certificates (PEM) to trust besides the system's, e.g. a fake's CA in tests.
    pub fn new(extra_roots_pem: Option<&[u8]>) -> Result<Self, CloudError> {
        let _ = extra_roots_pem;
        Ok(Self {})
    }
}

impl KeyVaultConnector for RestConnector {
    fn connect(&self, _credentials: &AzureCredentials, _vault_url: &str) -> Arc<dyn KeyVault> {
        Arc::new(Stub)
    }
}

struct Stub;

fn missing() -> CloudError {
    CloudError::new(ErrorKind::Rejected, "NotImplemented", "the Key Vault client is not built yet")
}

#[async_trait]
impl KeyVault for Stub {
    async fn list_keys(&self, _: Option<&str>) -> Result<Listing<KeyItem>, CloudError> {
        Err(missing())
    }
    async fn list_key_versions(&self, _: &str, _: Option<&str>) -> Result<Listing<KeyItem>, CloudError> {
        Err(missing())
    }
    async fn get_key(&self, _: &str) -> Result<KeyBundle, CloudError> {
        Err(missing())
    }
    async fn backup_key(&self, _: &str) -> Result<Vec<u8>, CloudError> {
        Err(missing())
    }
    async fn restore_key(&self, _: &[u8]) -> Result<KeyBundle, CloudError> {
        Err(missing())
    }
}
