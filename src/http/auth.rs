//! Who is calling: extractors that resolve the caller before a handler runs, so a handler that
//! takes [`Tenant`] or [`Admin`] cannot forget the check.
//!
//! actix polls a handler's extractors together and answers with the first failure. So that a
//! 401/403 is never hidden behind a body or query error, bodies and queries are read with
//! [`super::extract`]'s extractors, which never fail during extraction: their errors surface
//! when the handler takes the value, which is after authentication succeeded.
//!
//! - Admin: `Authorization: Bearer <security.admin_token>`.
//! - Metrics scraper: `Authorization: Bearer <metrics.token>`; without that setting `/metrics`
//!   is off and answers 404 like an unknown route.
//! - Tenant: `Authorization: Bearer <tenant API key>`; a revoked key answers 401
//!   `api_key_revoked`, a suspended tenant 403 `tenant_suspended`.
//!
//! Both spend the credential's rate-limit quota before it is checked, and a refused one
//! spends the client's failure quota ([`super::rate_limit`]).

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use super::AppState;
use super::error::ApiError;
use super::error::ErrorCode;
use super::rate_limit::Credential;
use crate::auth::{hash_api_key, token_matches};
use crate::domain::ids::ApiKeyId;
use crate::domain::ids::TenantId;
use crate::domain::tenant::TenantStatus;
use crate::storage::users::UserRecord;

/// `last_used_at` is kept to this resolution, so that a busy key does not cost a write per
/// request.
pub(crate) const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// The platform administrator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admin;

/// A Prometheus scraper holding `metrics.token`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetricsScraper;

/// The tenant a request acts for, resolved from its API key.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub user: UserRecord,
}

impl Tenant {
    pub(crate) fn id(&self) -> TenantId {
        self.user.id
    }
}

fn unauthorized(code: ErrorCode, message: &str) -> ApiError {
    ApiError::new(code, message)
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let header = req.headers().get(AUTHORIZATION).ok_or_else(|| {
        unauthorized(
            ErrorCode::Unauthorized,
            "missing credentials: send Authorization: Bearer <token>",
        )
    })?;
    let value = header
        .to_str()
        .map_err(|_| unauthorized(ErrorCode::Unauthorized, "malformed Authorization header"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        unauthorized(
            ErrorCode::Unauthorized,
            "malformed Authorization header: expected Bearer <token>",
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(
            ErrorCode::Unauthorized,
            "malformed Authorization header: expected Bearer <token>",
        ));
    }
    Ok(token.trim())
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("AppState is not registered"))
}

fn authenticate_admin(req: &HttpRequest) -> Result<Admin, ApiError> {
    let state = app_state(req)?;
    let token = bearer_token(req)?;
    state.rate_limits.admit(req, Credential::Bearer(token))?;
    if token_matches(token, &state.shared.settings.security.admin_token) {
        Ok(Admin)
    } else {
        state.rate_limits.record_failure(req);
        Err(unauthorized(ErrorCode::Unauthorized, "invalid admin token"))
    }
}

fn authenticate_metrics(req: &HttpRequest) -> Result<MetricsScraper, ApiError> {
    let state = app_state(req)?;
    // Off unless configured: nothing tells a prober that the endpoint exists.
    let Some(expected) = &state.shared.settings.metrics.token else {
        return Err(ApiError::not_found("no such route"));
    };
    let token = bearer_token(req)?;
    state.rate_limits.admit(req, Credential::Bearer(token))?;
    if token_matches(token, expected) {
        Ok(MetricsScraper)
    } else {
        state.rate_limits.record_failure(req);
        Err(unauthorized(
            ErrorCode::Unauthorized,
            "invalid metrics token",
        ))
    }
}

async fn authenticate_tenant(req: &HttpRequest) -> Result<Tenant, ApiError> {
    let state = app_state(req)?;
    let token = bearer_token(req)?;
    // Before the lookup: a guessing client costs no database read once it is refused.
    state.rate_limits.admit(req, Credential::Bearer(token))?;
    let refused = |code, message| {
        state.rate_limits.record_failure(req);
        unauthorized(code, message)
    };
    let key = state
        .shared
        .storage
        .api_keys()
        .find_by_hash(&hash_api_key(token))
        .await?
        .ok_or_else(|| refused(ErrorCode::InvalidApiKey, "unknown API key"))?;
    if key.revoked_at.is_some() {
        return Err(refused(
            ErrorCode::ApiKeyRevoked,
            "this API key has been revoked",
        ));
    }
    let user = state
        .shared
        .storage
        .users()
        .get(key.user_id)
        .await
        .map_err(|err| match err {
            // A key whose tenant is gone is as good as unknown.
            crate::storage::StorageError::NotFound => {
                refused(ErrorCode::InvalidApiKey, "unknown API key")
            }
            other => other.into(),
        })?;
    if user.status == TenantStatus::Suspended {
        return Err(ApiError::new(
            ErrorCode::TenantSuspended,
            "this account is suspended; contact the platform administrator",
        ));
    }
    if state.key_usage.should_record(key.id) {
        let api_keys = state.shared.storage.api_keys();
        // Off the request path: the answer does not wait for this write.
        tokio::spawn(async move {
            if let Err(err) = api_keys
                .touch(key.id, bson::DateTime::now(), LAST_USED_RESOLUTION)
                .await
            {
                tracing::warn!(error = %err, "cannot record API key use");
            }
        });
    }
    Ok(Tenant { user })
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate_admin(req))
    }
}

impl FromRequest for MetricsScraper {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate_metrics(req))
    }
}

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate_tenant(&req).await })
    }
}

/// Remembers when this instance last recorded each key's use. Other instances are covered by
/// the condition in `ApiKeys::touch`.
#[derive(Debug, Default)]
pub struct KeyUsageThrottle {
    recorded: Mutex<HashMap<ApiKeyId, Instant>>,
}

/// Bound on remembered keys; older entries are dropped past it.
const MAX_REMEMBERED_KEYS: usize = 100_000;

impl KeyUsageThrottle {
    /// Whether a use of `key` should be written now (and notes that it will be).
    pub(crate) fn should_record(&self, key: ApiKeyId) -> bool {
        let now = Instant::now();
        let mut recorded = self
            .recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(last) = recorded.get(&key) {
            if now.duration_since(*last) < LAST_USED_RESOLUTION {
                return false;
            }
        }
        if recorded.len() >= MAX_REMEMBERED_KEYS {
            recorded.retain(|_, last| now.duration_since(*last) < LAST_USED_RESOLUTION);
        }
        recorded.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_use_is_recorded_at_most_once_per_resolution() {
        let throttle = KeyUsageThrottle::default();
        let key = ApiKeyId::new();
        assert!(throttle.should_record(key));
        assert!(!throttle.should_record(key));
        assert!(
            throttle.should_record(ApiKeyId::new()),
            "other keys are independent"
        );
    }
}
