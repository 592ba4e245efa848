//! Field checks shared by both clouds' requests; each failure names the field.

use crate::{Result, ServiceError};

pub fn require(field: &str, v: Option<String>) -> Result<String> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(ServiceError::invalid(field, "is required")),
    }
}

pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok =
        !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_. ".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(field, "must be 1-128 characters of letters, digits, '-', '_', '.', ' '"))
    }
}

pub fn check_url(field: &str, url: &str) -> Result<()> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(ServiceError::invalid(field, "must be an http:// or https:// URL")),
    }
}

pub fn parse_bool(field: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ServiceError::invalid(field, format!("must be true or false, got {v:?}"))),
    }
}

/// Every `KeyState` AWS KMS reports.
pub const AWS_KEY_STATES: &[&str] = &[
    "Enabled",
    "Disabled",
    "PendingDeletion",
    "PendingImport",
    "Unavailable",
    "Creating",
    "Updating",
    "PendingReplicaDeletion",
];

/// An AWS key state in AWS's spelling, whatever the case it was given in (`disabled` is `Disabled`); a 400
/// listing the states for anything else, so that a filter never silently matches nothing.
pub fn aws_key_state(field: &str, v: &str) -> Result<String> {
    AWS_KEY_STATES.iter().find(|s| s.eq_ignore_ascii_case(v.trim())).map(|s| s.to_string()).ok_or_else(|| {
        ServiceError::invalid(field, format!("unknown key state {v:?}; one of {}", AWS_KEY_STATES.join(", ")))
    })
}
