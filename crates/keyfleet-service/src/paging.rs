//! `skip`, `limit` and `sort` of every list, validated once.

use keyfleet_api_types::common::ListParams;
use keyfleet_core::{Page, SortKey};

use crate::{Result, ServiceError};

pub const DEFAULT_LIMIT: u64 = 10;
pub const MAX_LIMIT: u64 = 1000;
/// The largest `skip` a database takes (a signed 64-bit integer).
pub const MAX_SKIP: u64 = i64::MAX as u64;

/// Builds a `Page`; `sort` fields must be among `allowed` (a leading `-` sorts descending), each at most once.
pub fn page(params: &ListParams, allowed: &[&str]) -> Result<Page> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ServiceError::invalid("limit", format!("must be at most {MAX_LIMIT}, got {limit}")));
    }
    let skip = params.skip.unwrap_or(0);
    if skip > MAX_SKIP {
        return Err(ServiceError::invalid("skip", format!("must be at most {MAX_SKIP}, got {skip}")));
    }
    let mut sort: Vec<SortKey> = Vec::new();
    for part in params.sort.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (descending, field) = match part.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        if !allowed.contains(&field) {
            let allowed =
                if allowed.is_empty() { "none (this list has a fixed order)".to_string() } else { allowed.join(", ") };
            let shown: String = field.chars().take(64).collect();
            return Err(ServiceError::invalid("sort", format!("cannot sort by {shown:?}; allowed: {allowed}")));
        }
        if sort.iter().any(|k| k.field == field) {
            return Err(ServiceError::invalid("sort", format!("{field} is given more than once")));
        }
        sort.push(SortKey { field: field.to_string(), descending });
    }
    Ok(Page { skip, limit, sort })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_limits_and_sort() {
        let p = page(&ListParams::default(), &["createdAt"]).expect("page");
        assert_eq!((p.skip, p.limit, p.sort.len()), (0, 10, 0));
        let p =
            page(&ListParams { sort: Some("-createdAt".into()), ..Default::default() }, &["createdAt"]).expect("page");
        assert!(p.sort[0].descending);
        let e = page(&ListParams { limit: Some(5000), ..Default::default() }, &[]).expect_err("too big");
        assert!(e.to_string().starts_with("limit:"));
        let e = page(&ListParams { sort: Some("nope".into()), ..Default::default() }, &["createdAt"])
            .expect_err("unknown field");
        assert!(e.to_string().starts_with("sort:"));
        let e = page(&ListParams { skip: Some(MAX_SKIP + 1), ..Default::default() }, &[]).expect_err("skip");
        assert!(e.to_string().starts_with("skip:"));
        let many = vec!["createdAt"; 2000].join(",");
        let e = page(&ListParams { sort: Some(many), ..Default::default() }, &["createdAt"]).expect_err("repeated");
        assert!(e.to_string().contains("more than once"), "{e}");
    }
}
