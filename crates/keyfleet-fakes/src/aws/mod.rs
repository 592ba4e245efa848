//! The strict fake of AWS KMS: its HTTP surface ([`FakeKms::router`]), its in-memory state and
//! the helpers tests use to arrange and inspect that state.

mod cli;
mod control;
mod faults;
mod keyspec;
mod ops;
mod paging;
mod protocol;
mod quota;
mod state;
mod stats;
mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use cli::{FakeAwsArgs, run};
pub use faults::{CONNECTION_DROPPED, DROPPED_AFTER_APPLY, Faults};
pub use quota::{AWS_DEFAULT_QUOTAS, OTHER_OPERATIONS_RATE, QuotaConfig, aws_default_quota};
pub use stats::{FakeKmsStats, KmsCallCounts, KmsOperationStats};

use faults::{Injector, Outcome, Plan};
use ops::{Cx, Operation};
use protocol::{ErrorCode, KmsError, Reply};
use state::{NewKey, Refs, Scope, State};

/// The access key id that maps to [`BUILTIN_ACCOUNT_ID`] out of the box (any secret works).
pub const BUILTIN_ACCESS_KEY_ID: &str = "AKIAFAKEKMS000000001";
/// The account of [`BUILTIN_ACCESS_KEY_ID`], and the default account of the control routes.
pub const BUILTIN_ACCOUNT_ID: &str = "111122223333";
/// The default region of the control routes and of `--seed-region`.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Which access key belongs to which account, and the faults to inject from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeKmsConfig {
    /// Access key id -> 12-digit account id. Later entries win. Access keys not listed get a
    /// stable account derived from a hash of the access key id.
    pub accounts: Vec<(String, String)>,
    /// None by default; [`FakeKms::set_faults`] changes them while the fake runs.
    pub faults: Faults,
}

impl Default for FakeKmsConfig {
    fn default() -> Self {
        Self {
            accounts: vec![(BUILTIN_ACCESS_KEY_ID.to_owned(), BUILTIN_ACCOUNT_ID.to_owned())],
            faults: Faults::default(),
        }
    }
}

impl FakeKmsConfig {
    /// Adds (or overrides) the account of an access key.
    #[must_use]
    pub fn with_account(mut self, access_key_id: impl Into<String>, account: impl Into<String>) -> Self {
        self.accounts.push((access_key_id.into(), account.into()));
        self
    }

    /// Injects these faults from the start.
    #[must_use]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// One AWS call the fake answered, successful or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// 1, 2, 3... in arrival order.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Empty when the request carried no readable SigV4 credential.
    pub access_key_id: String,
    /// Empty when the request carried no readable SigV4 credential.
    pub account: String,
    /// Empty when the request carried no readable SigV4 credential.
    pub region: String,
    /// The operation from `X-Amz-Target` (also when unknown); empty when the header is missing.
    pub operation: String,
    /// The KeyId (UUID) the call named, once resolved.
    pub key_id: Option<String>,
    /// The AWS error code, `None` on success. A dropped connection is
    /// [`CONNECTION_DROPPED`] (not applied) or [`DROPPED_AFTER_APPLY`] (applied: the change
    /// happened, but the client got no answer).
    pub error: Option<String>,
    /// Whether the call took effect: it succeeded, or it was applied before its connection was
    /// dropped. False for throttled, failed (AWS errors and injected 5xx) and dropped-before
    /// calls, which changed nothing.
    #[serde(default)]
    pub applied: bool,
    /// The `x-amzn-RequestId` the call was answered with (empty for a dropped connection).
    #[serde(default)]
    pub request_id: String,
}

/// A strict in-memory AWS KMS. Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct FakeKms {
    state: Arc<Mutex<State>>,
    /// Never locked while waiting for `state`: a call takes `state`, then this.
    injector: Arc<Mutex<Injector>>,
}

impl fmt::Debug for FakeKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeKms").finish_non_exhaustive()
    }
}

impl Default for FakeKms {
    fn default() -> Self {
        Self::new(FakeKmsConfig::default())
    }
}

impl FakeKms {
    pub fn new(config: FakeKmsConfig) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::new(config.accounts))),
            injector: Arc::new(Mutex::new(Injector::new(config.faults))),
        }
    }

    /// The whole HTTP surface: `POST /` for KMS and the `/_fake/...` control routes.
    pub fn router(&self) -> Router {
        Router::new().route("/", post(kms_endpoint)).merge(control::routes()).with_state(self.clone())
    }

    /// Serves forever on an already bound listener.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `127.0.0.1:0` and serves on a background task until the [`RunningFake`] drops.
    pub async fn spawn(self) -> std::io::Result<RunningFake> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(self.clone().serve(listener));
        Ok(RunningFake { fake: self, addr, task })
    }

    /// The account a request signed with this access key id acts in.
    /// From now on every call signed with this access key is refused with `UnrecognizedClientException`, as
    /// AWS answers revoked or unknown credentials.
    pub fn refuse_access_key(&self, access_key_id: &str) {
        self.lock().refused.insert(access_key_id.to_owned());
    }

    pub fn account_for_access_key(&self, access_key_id: &str) -> String {
        self.lock().account_for(access_key_id)
    }

    /// Creates `n` enabled symmetric keys with the default policy; returns their KeyIds.
    pub fn create_keys(&self, account: &str, region: &str, n: usize) -> Vec<String> {
        let scope = Scope::new(account, region);
        let now = Utc::now();
        let mut state = self.lock();
        let store = state.store_mut(&scope);
        (0..n).map(|_| store.create_key(&scope, NewKey::symmetric(), now).id.clone()).collect()
    }

    /// `"Enabled"`, `"Disabled"` or `"PendingDeletion"`; `None` if there is no such key.
    /// `key_id` may also be a key ARN, alias name or alias ARN.
    pub fn key_state(&self, account: &str, region: &str, key_id: &str) -> Option<String> {
        self.with_key(account, region, key_id, |key| key.state.as_str().to_owned())
    }

    pub fn key_policy(&self, account: &str, region: &str, key_id: &str) -> Option<String> {
        self.with_key(account, region, key_id, |key| key.policy.clone())
    }

    /// Tags sorted by key.
    pub fn key_tags(&self, account: &str, region: &str, key_id: &str) -> Option<Vec<(String, String)>> {
        self.with_key(account, region, key_id, |key| key.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Makes a key (and its aliases) vanish at once, as if its deletion had completed.
    /// Returns whether it existed.
    pub fn delete_key_now(&self, account: &str, region: &str, key_id: &str) -> bool {
        let scope = Scope::new(account, region);
        let mut state = self.lock();
        let store = state.store_mut(&scope);
        let Ok(id) = store.find(&scope, key_id, Refs::KeyOrAlias).map(|key| key.id.clone()) else {
            return false;
        };
        store.remove_key(&id)
    }

    /// The whole call log, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls_since(0)
    }

    /// The calls with `seq > since`.
    pub fn calls_since(&self, since: u64) -> Vec<CallRecord> {
        self.lock().calls_since(since)
    }

    /// Every call so far, counted per (account, region, operation) and in total.
    pub fn stats(&self) -> FakeKmsStats {
        self.lock().stats()
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.injector().faults().clone()
    }

    /// Replaces the faults, for the calls that arrive from now on, and restarts the seeded
    /// random sequence. Quota windows and per-key intervals keep counting the calls already
    /// made. Values are not checked here ([`Faults::validate`] does; the control route
    /// refuses invalid faults): a probability above 1 acts as 1, below 0 as 0.
    pub fn set_faults(&self, faults: Faults) {
        tracing::info!(%faults, "fake KMS faults set");
        self.injector().set(faults);
    }

    fn with_key<T>(&self, account: &str, region: &str, key_id: &str, read: impl FnOnce(&state::Key) -> T) -> Option<T> {
        let scope = Scope::new(account, region);
        let state = self.lock();
        let key = state.store(&scope)?.find(&scope, key_id, Refs::KeyOrAlias).ok()?;
        Some(read(key))
    }

    /// A panic while the lock was held cannot leave the state half-changed in a way that
    /// matters to a test fake, so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn injector(&self) -> MutexGuard<'_, Injector> {
        self.injector.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one KMS call, with the faults `plan` drew for it, and records it in the call log.
    fn handle(&self, headers: &HeaderMap, body: &[u8], plan: &Plan, request_id: &str) -> Outcome {
        let now = Utc::now();
        let tick = tokio::time::Instant::now();
        let target = protocol::target(headers).unwrap_or_default();
        let operation = target.strip_prefix(protocol::TARGET_PREFIX).unwrap_or(target).to_owned();
        let credential = protocol::credential(headers);

        let mut state = self.lock();
        let (access_key_id, scope) = match &credential {
            Ok(credential) => (
                credential.access_key_id.clone(),
                Scope::new(&state.account_for(&credential.access_key_id), &credential.region),
            ),
            Err(_) => (String::new(), Scope::new("", "")),
        };
        let (outcome, key_id) = match credential {
            // The connection is lost on the way in: the service never sees the call.
            Ok(_) if plan.drop_connection => (Outcome::Dropped, peek_key_id(&state, &scope, target, body)),
            Err(_) if plan.drop_connection => (Outcome::Dropped, None),
            Ok(c) if state.refused.contains(&c.access_key_id) => {
                let err = KmsError::new(
                    ErrorCode::UnrecognizedClient,
                    "The security token included in the request is invalid.",
                );
                (Outcome::Answered { result: Err(err), injected: false }, peek_key_id(&state, &scope, target, body))
            }
            Ok(_) => self.admit(&mut state, &scope, target, body, (now, tick), plan),
            Err(err) => (Outcome::Answered { result: Err(err), injected: false }, None),
        };

        let error = outcome.error();
        match &outcome {
            Outcome::Answered { result: Err(err), injected: false } if err.code == ErrorCode::KmsInternal => {
                tracing::error!(aws.operation = %operation, error = %err, "fake KMS internal error");
            }
            _ => tracing::debug!(
                aws.operation = %operation,
                aws.account = %scope.account,
                aws.region = %scope.region,
                key.id = key_id.as_deref().unwrap_or_default(),
                error = error.as_deref().unwrap_or_default(),
                "fake KMS call"
            ),
        }
        state.record(CallRecord {
            seq: 0,
            at: now,
            access_key_id,
            account: scope.account,
            region: scope.region,
            operation,
            key_id,
            applied: outcome.applied(),
            request_id: if outcome.answered() { request_id.to_owned() } else { String::new() },
            error,
        });
        outcome
    }

    /// An authenticated call: throttled, failed by an injected 5xx, or executed (and then
    /// perhaps dropped). As on AWS, throttling comes before the input is validated. Also
    /// returns the key the call named, for the call log.
    fn admit(
        &self,
        state: &mut State,
        scope: &Scope,
        target: &str,
        body: &[u8],
        (now, tick): (DateTime<Utc>, tokio::time::Instant),
        plan: &Plan,
    ) -> (Outcome, Option<String>) {
        let mut key_id = None;
        let Some(operation) = target.strip_prefix(protocol::TARGET_PREFIX).and_then(Operation::from_name) else {
            // An unknown operation is refused before any quota applies.
            let result = execute(state, scope, target, body, now, &mut key_id);
            return (Outcome::Answered { result, injected: false }, key_id);
        };
        let mut injector = self.injector();
        // Without faults nothing needs the key before the call runs; spare the busy path.
        if injector.faults().is_active() {
            key_id = peek_key_id(state, scope, target, body);
        }
        if let Err(err) = injector.throttle(scope, operation, key_id.as_deref(), tick) {
            return (Outcome::Answered { result: Err(err), injected: true }, key_id);
        }
        if let Some(err) = plan.server_error() {
            return (Outcome::Answered { result: Err(err), injected: true }, key_id);
        }
        let result = execute(state, scope, target, body, now, &mut key_id);
        if result.is_ok() {
            if let Some(id) = key_id.as_deref() {
                injector.changed(scope, operation, id, tick);
            }
            if plan.drop_after_apply {
                return (Outcome::DroppedAfterApply, key_id);
            }
        }
        (Outcome::Answered { result, injected: false }, key_id)
    }
}

/// The key a call names, resolved without running the call: throttled, failed and dropped
/// calls are logged with it, and the per-key interval needs it. `None` when the body or the
/// key cannot be read; the call itself then reports why.
fn peek_key_id(state: &State, scope: &Scope, target: &str, body: &[u8]) -> Option<String> {
    let operation = target.strip_prefix(protocol::TARGET_PREFIX).and_then(Operation::from_name)?;
    let body = protocol::body_object(body).ok()?;
    let key_ref = body.get("KeyId")?.as_str()?;
    let refs = if operation == Operation::DescribeKey { Refs::KeyOrAlias } else { Refs::KeyOnly };
    Some(state.store(scope)?.find(scope, key_ref, refs).ok()?.id.clone())
}

/// Runs an authenticated call; sets `key_id` to the key the call named once it is resolved.
fn execute(
    state: &mut State,
    scope: &Scope,
    target: &str,
    body: &[u8],
    now: DateTime<Utc>,
    key_id: &mut Option<String>,
) -> Result<Reply, KmsError> {
    let operation = target.strip_prefix(protocol::TARGET_PREFIX).and_then(Operation::from_name).ok_or_else(|| {
        KmsError::new(ErrorCode::UnknownOperation, format!("Unknown operation: X-Amz-Target '{target}'"))
    })?;
    let body = protocol::body_object(body)?;
    let State { stores, markers, .. } = state;
    let store = stores.entry(scope.clone()).or_default();
    let mut cx = Cx { scope, now, markers, key_id: None };
    let result = ops::dispatch(operation, &mut cx, store, body);
    *key_id = cx.key_id;
    result
}

async fn kms_endpoint(AxumState(fake): AxumState<FakeKms>, headers: HeaderMap, body: Bytes) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    // Drawn on arrival, so that a seed gives the same faults to the same order of arrival.
    let plan = fake.injector().plan();
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match fake.handle(&headers, &body, &plan, &request_id) {
        Outcome::Answered { result, .. } => protocol::respond(&request_id, result),
        Outcome::Dropped | Outcome::DroppedAfterApply => faults::dropped_connection(),
    }
}

/// A fake serving on a background task; the task stops when this value drops.
#[derive(Debug)]
pub struct RunningFake {
    pub fake: FakeKms,
    pub addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningFake {
    /// `http://127.0.0.1:PORT`, to give SDKs as `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}
