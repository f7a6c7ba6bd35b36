//! Who is calling: the `Authorization: Bearer <secret>` header resolved to an API key, and
//! the role policies routes demand. [`Auth<P>`] is an extractor, so a request is refused
//! (401/403) before its body is even read.
//!
//! Must never: log or echo a secret; keep a secret in memory longer than the request (the
//! cache holds only SHA-256 hashes).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kembali_app::engine::secret_sha256;
use kembali_app::model::Caller;
use kembali_app::store::{ApiKeyRecord, Role, Store};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::RwLock;

/// Keys remembered after a successful lookup. Keys are never revoked today, so a positive
/// entry cannot go stale; the bound keeps a flood of distinct valid keys from growing memory.
const MAX_CACHED_KEYS: usize = 4_096;
/// Our secrets are 67 characters; anything much longer is not one of ours and is refused
/// without hashing or a database read.
const MAX_SECRET_LEN: usize = 256;

/// API keys already resolved, by the SHA-256 of their secret.
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, ApiKeyRecord>>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<ApiKeyRecord> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }

    fn put(&self, record: ApiKeyRecord) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(record.secret_sha256.clone(), record);
    }

    /// The key whose secret this is, from the cache or the store.
    async fn resolve<S: Store>(
        &self,
        state: &AppState<S>,
        secret: &str,
    ) -> Result<ApiKeyRecord, ApiError> {
        let hash = secret_sha256(secret);
        if let Some(hit) = self.get(&hash) {
            return Ok(hit);
        }
        match state.engine.authenticate(secret).await? {
            Some(record) => {
                self.put(record.clone());
                Ok(record)
            }
            None => Err(ApiError::unauthorized("the API key is not valid")),
        }
    }
}

/// The roles a route admits.
pub trait Policy: Send + Sync + 'static {
    const ROLES: &'static [Role];
    /// For the 403 message.
    const WHAT: &'static str;
}

/// Program settings and the test clock.
pub struct AdminOnly;
/// What a till does: orders, returns, quotes, redemptions.
pub struct Till;
/// Reading one redemption: the till that made it, or support.
pub struct RedemptionReader;
/// Customer profiles, wallets and statements.
pub struct CustomerCare;
/// Program settings, totals and events, read-only.
pub struct Analytics;

impl Policy for AdminOnly {
    const ROLES: &'static [Role] = &[Role::Admin];
    const WHAT: &'static str = "only an admin key may do this";
}
impl Policy for Till {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Channel];
    const WHAT: &'static str = "only an admin or channel key may do this";
}
impl Policy for RedemptionReader {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Channel, Role::Support];
    const WHAT: &'static str = "only an admin, channel or support key may read redemptions";
}
impl Policy for CustomerCare {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Support];
    const WHAT: &'static str = "only an admin or support key may read customers";
}
impl Policy for Analytics {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Analyst];
    const WHAT: &'static str = "only an admin or analyst key may read the program";
}

/// An authenticated caller whose role `P` admits.
pub struct Auth<P> {
    pub key: ApiKeyRecord,
    _policy: PhantomData<P>,
}

impl<P> Auth<P> {
    /// The channel and store a channel key is bound to; nothing for other roles.
    pub fn caller(&self) -> Caller {
        Caller {
            channel: self.key.channel,
            store_id: self.key.store_id.clone(),
        }
    }

    /// Idempotency keys are scoped to the API key that used them.
    pub fn scope(&self) -> &str {
        &self.key.id
    }
}

/// The secret of an `Authorization: Bearer <secret>` header.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("send `Authorization: Bearer <api key>`");
    let raw = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, secret) = raw.split_once(' ').ok_or_else(missing)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() {
        return Err(missing());
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(ApiError::unauthorized("the API key is not valid"));
    }
    Ok(secret)
}

impl<P: Policy, S: Store> FromRequestParts<AppState<S>> for Auth<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts)?;
        let key = state.keys.resolve(state, secret).await?;
        if !P::ROLES.contains(&key.role) {
            return Err(ApiError::forbidden(format!(
                "{} (this is a {} key)",
                P::WHAT,
                key.role.as_str()
            )));
        }
        tracing::Span::current().record("key_id", key.id.as_str());
        Ok(Auth {
            key,
            _policy: PhantomData,
        })
    }
}
