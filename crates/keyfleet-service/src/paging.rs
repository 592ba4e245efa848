//! `skip`, `limit` and `sort` of every list, validated once.

use keyfleet_api_types::common::ListParams;
use keyfleet_core::{Page, SortKey};

use crate::{Result, ServiceError};

pub const DEFAULT_LIMIT: u64 = 10;
pub const MAX_LIMIT: u64 = 1000;

/// Builds a `Page`; `sort` fields must be among `allowed` (a leading `-` sorts descending).
pub fn page(params: &ListParams, allowed: &[&str]) -> Result<Page> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ServiceError::invalid("limit", format!("must be at most {MAX_LIMIT}")));
    }
    let mut sort = Vec::new();
    for part in params.sort.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (descending, field) = match part.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        if !allowed.contains(&field) {
            return Err(ServiceError::invalid(
                "sort",
                format!("cannot sort by {field:?}; allowed: {}", allowed.join(", ")),
            ));
        }
        sort.push(SortKey { field: field.to_string(), descending });
    }
    Ok(Page { skip: params.skip.unwrap_or(0), limit, sort })
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
    }
}
