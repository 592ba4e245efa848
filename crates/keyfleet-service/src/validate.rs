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
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ServiceError::invalid(field, "must be true or false")),
    }
}
