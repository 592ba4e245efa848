//! The web console end to end: the real server over HTTPS with a real SQLite file (or PostgreSQL with
//! `KEYFLEET_TEST_BACKEND=postgres`) and the fake AWS KMS; its security over plain HTTP requests
//! (`security`), and its pages driven in headless Chromium through chromedriver (`browser`).
#![allow(clippy::unwrap_used)]

mod browser;
mod security;
#[allow(dead_code)]
#[path = "../api/support.rs"]
mod support;
mod visitor;
