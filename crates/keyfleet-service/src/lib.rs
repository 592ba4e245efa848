#![doc = include_str!("../README.md")]

pub mod audit;
pub mod auth;
pub mod authz;
pub mod aws;
pub mod azure;
pub mod console;
mod error;
pub mod health;
pub mod jobs;
pub mod login_guard;
pub mod paging;
pub mod progress;
pub mod rerun;
pub mod safety;
pub mod sync_jobs;
pub mod users;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use keyfleet_core::crypto::MasterKey;
use keyfleet_engine::Engine;
use keyfleet_store::Store;
use login_guard::{HashPool, LoginSettings, LoginThrottle};
use safety::SafetySettings;

pub use authz::Caller;
pub use error::ServiceError;

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Token lifetimes and other knobs of the services.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// JWT lifetime; CCKM clients expect 300 s.
    pub token_ttl: Duration,
    /// Refresh-token lifetime when the request does not ask for one.
    pub refresh_token_ttl: Duration,
    /// Login throttling and password-hashing limits.
    pub login: LoginSettings,
    /// Plans, the blast-radius cap, failure thresholds, idempotency keys.
    pub safety: SafetySettings,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            login: LoginSettings::default(),
            safety: SafetySettings::default(),
        }
    }
}

/// Everything a use case needs, built once at start and shared by all requests.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    master: MasterKey,
    jwt_key: [u8; 32],
    settings: ServiceSettings,
    login_throttle: LoginThrottle,
    hash_pool: HashPool,
    tokens: auth::TokenCache,
    ended_lines: jobs::EndedJobLines,
}

impl Services {
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, master: MasterKey, settings: ServiceSettings) -> Self {
        // Derived, so every node holding the master key verifies every other node's tokens.
        let jwt_key = master.derive("keyfleet/jwt/hs256/v1");
        let login_throttle = LoginThrottle::new(settings.login.clone());
        let hash_pool = HashPool::new(settings.login.hash_concurrency, settings.login.hash_queue);
        Self {
            store,
            engine,
            master,
            jwt_key,
            settings,
            login_throttle,
            hash_pool,
            tokens: Default::default(),
            ended_lines: Default::default(),
        }
    }

    /// Counts a job just stored in `keyfleet_jobs_created_total`.
    pub(crate) fn count_created(&self, job: &keyfleet_core::JobRecord) {
        let mode = if job.status == keyfleet_core::JobStatus::Planned { "plan" } else { "run" };
        self.engine.metrics().jobs_created.inc([job.operation.cloud(), job.operation.as_str(), mode]);
    }
}
