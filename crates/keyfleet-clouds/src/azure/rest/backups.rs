//! Key Vault's backup of a key (all its versions, as an opaque blob) and its restore into a vault.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;

use super::errors::{invalid_response, parse};
use super::keys::{BASE64URL_LENIENT, WireBackup, check_key_name, key_bundle};
use super::transport::RestVault;
use crate::azure::KeyBundle;
use crate::error::{CloudError, ErrorKind};

impl RestVault {
    /// The backup blob, base64url-decoded.
    pub(super) async fn backup(&self, name: &str) -> Result<Vec<u8>, CloudError> {
        check_key_name(name)?;
        let url = self.endpoint(&["keys", name, "backup"])?;
        let body = self.call("backup_key", Method::POST, url, None).await?;
        let result: WireBackup = parse(&body)?;
        let value = result.value.ok_or_else(|| invalid_response("backup: no value"))?;
        BASE64URL_LENIENT
            .decode(value.trim())
            .map_err(|e| invalid_response(&format!("backup: value is not base64url: {e}")))
    }

    /// Restores `backup` into this vault.
    pub(super) async fn restore(&self, backup: &[u8]) -> Result<KeyBundle, CloudError> {
        let url = self.endpoint(&["keys", "restore"])?;
        let body = serde_json::to_vec(&serde_json::json!({ "value": URL_SAFE_NO_PAD.encode(backup) }))
            .map_err(|e| CloudError::new(ErrorKind::Rejected, "InvalidRequest", e.to_string()))?;
        let body = self.call("restore_key", Method::POST, url, Some(body)).await?;
        key_bundle(parse(&body)?)
    }
}
