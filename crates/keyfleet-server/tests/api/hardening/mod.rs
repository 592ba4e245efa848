//! Issue 11's hardening: the permission matrix, connection limits and response headers, file modes.

mod audit;
mod files;
mod limits;
mod permissions;
mod tokens;
