//! Request limits for everything that authenticates, so that guessing credentials, or hammering
//! with a good one, costs the attacker time rather than us database reads.
//!
//! Two kinds of quota, both [`governor`] (GCRA) limiters held in memory per instance:
//! - **Per credential**: every request presenting a tenant API key, the admin token or a FreJun
//!   URL key spends one cell of that credential's quota *before* the credential is looked up.
//!   FreJun is limited per URL key (that is, per tenant) rather than per address: its few
//!   addresses carry every tenant's flows and webhooks, and one tenant's burst must not refuse
//!   another's calls.
//! - **Failed authentications per client**: each refused credential spends a cell of the
//!   client's quota. A client that has exhausted it is refused at the door, before its
//!   credential is hashed or looked up, until governor says a cell is free again: governor
//!   counts, and this module only remembers that moment (governor has no way to ask without
//!   spending).
//!
//! A client is its address (IPv6: its /64, which one host usually owns whole), taken from the TCP
//! peer or, behind `rate_limit.trusted_proxy_hops` proxies, from `X-Forwarded-For`. Every
//! refusal answers 429 `rate_limited` with `Retry-After`. Stale entries are dropped by
//! [`RateLimits::prune`], which the server calls every minute.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::settings::RateLimitSettings;

/// What a request authenticates with; each has its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    /// A tenant API key or the admin token (`Authorization: Bearer`).
    Bearer(&'a str),
    /// A tenant's FreJun URL secret (`?key=`).
    FrejunKey(&'a str),
}

/// Who is asking: an address, IPv6 cut to its /64.
type ClientKey = IpAddr;

/// A credential, by digest: the limiter never holds a secret.
type CredentialKey = [u8; 16];

/// Bound on clients remembered as blocked; past it, the expired ones are dropped first and, if
/// the set is still full, a new block is not remembered (the failure quota still counts).
const MAX_BLOCKED_CLIENTS: usize = 100_000;

/// The instance's limiters.
pub struct RateLimits {
    settings: RateLimitSettings,
    bearer: DefaultKeyedRateLimiter<CredentialKey>,
    frejun: DefaultKeyedRateLimiter<CredentialKey>,
    failures: DefaultKeyedRateLimiter<ClientKey>,
    /// Clients whose failure quota is spent, with when governor frees its next cell.
    blocked: RwLock<HashMap<ClientKey, Instant>>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let per_second =
            |rate: u32, burst: u32| Quota::per_second(non_zero(rate)).allow_burst(non_zero(burst));
        let failures =
            Quota::with_period(Duration::from_secs(60) / settings.failed_auth_per_minute.max(1))
                .expect("a failure period of at least 60 µs")
                .allow_burst(non_zero(settings.failed_auth_burst));
        Self {
            settings: settings.clone(),
            bearer: DefaultKeyedRateLimiter::keyed(per_second(
                settings.api_key_per_second,
                settings.api_key_burst,
            )),
            frejun: DefaultKeyedRateLimiter::keyed(per_second(
                settings.frejun_key_per_second,
                settings.frejun_key_burst,
            )),
            failures: DefaultKeyedRateLimiter::keyed(failures),
            blocked: RwLock::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// Before a credential is looked up: refuses a client whose failure quota is spent, then
    /// spends one cell of the credential's own quota.
    pub(crate) fn admit(
        &self,
        req: &HttpRequest,
        credential: Credential<'_>,
    ) -> Result<(), ApiError> {
        let Some(client) = self.client_of(req) else {
            return Ok(());
        };
        if let Some(wait) = self.blocked_for(client) {
            return Err(ApiError::rate_limited(
                "too many failed authentications from this address; retry later",
                wait,
            ));
        }
        let (limiter, key) = match credential {
            Credential::Bearer(secret) => (&self.bearer, digest(b"bearer", secret)),
            Credential::FrejunKey(secret) => (&self.frejun, digest(b"frejun", secret)),
        };
        limiter.check_key(&key).map_err(|not_until| {
            ApiError::rate_limited(
                "too many requests with this credential; retry later",
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    /// After a credential was refused: spends one cell of the client's failure quota, and
    /// blocks the client once it has none left.
    pub(crate) fn record_failure(&self, req: &HttpRequest) {
        let Some(client) = self.client_of(req) else {
            return;
        };
        if let Err(not_until) = self.failures.check_key(&client) {
            let wait = not_until.wait_time_from(self.clock.now());
            // INFO, not WARN: a botnet could otherwise flood the log with one line per address.
            tracing::info!(client = %client, retry_after_ms = wait.as_millis() as u64, "client blocked after repeated failed authentication");
            self.block(client, Instant::now() + wait);
        }
    }

    /// Drops what no longer limits anyone: full buckets and expired blocks.
    pub fn prune(&self) {
        for limiter in [&self.bearer, &self.frejun] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = Instant::now();
        self.blocked_mut().retain(|_, until| *until > now);
    }

    /// How many credentials and clients are being tracked (for tests and diagnostics).
    pub fn tracked(&self) -> usize {
        self.bearer.len() + self.frejun.len() + self.failures.len() + self.blocked_read().len()
    }

    /// The client to account a request to, or `None` when limits do not apply to it.
    fn client_of(&self, req: &HttpRequest) -> Option<ClientKey> {
        if !self.settings.enabled {
            return None;
        }
        let peer = req.peer_addr().map(|addr| addr.ip());
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok());
        let address = client_address(peer, forwarded, self.settings.trusted_proxy_hops)?;
        if self.settings.exempt_loopback && address.is_loopback() {
            return None;
        }
        Some(client_key(address))
    }

    fn blocked_for(&self, client: ClientKey) -> Option<Duration> {
        let until = *self.blocked_read().get(&client)?;
        until.checked_duration_since(Instant::now())
    }

    fn block(&self, client: ClientKey, until: Instant) {
        let mut blocked = self.blocked_mut();
        if blocked.len() >= MAX_BLOCKED_CLIENTS {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            if blocked.len() >= MAX_BLOCKED_CLIENTS {
                return;
            }
        }
        blocked.insert(client, until);
    }

    fn blocked_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ClientKey, Instant>> {
        self.blocked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn blocked_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ClientKey, Instant>> {
        self.blocked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The client's address: the TCP peer, or behind `hops` trusted proxies the `hops`-th entry
/// from the right of `X-Forwarded-For` (entries further left were written by the client and
/// prove nothing). When the header is missing, too short or not an address, the request did
/// not come through the proxies as configured and the peer is all that is known.
fn client_address(peer: Option<IpAddr>, forwarded_for: Option<&str>, hops: u8) -> Option<IpAddr> {
    if hops == 0 {
        return peer;
    }
    let from_proxies = forwarded_for.and_then(|header| {
        let entries: Vec<&str> = header.split(',').map(str::trim).collect();
        let index = entries.len().checked_sub(usize::from(hops))?;
        entries[index].parse().ok()
    });
    from_proxies.or(peer)
}

/// IPv6 clients are limited per /64: a single host is usually handed a whole one.
fn client_key(address: IpAddr) -> ClientKey {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !(u128::MAX >> 64);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

fn digest(domain: &[u8], secret: &str) -> CredentialKey {
    let hash = Sha256::new()
        .chain_update(domain)
        .chain_update([0])
        .chain_update(secret.as_bytes())
        .finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

fn non_zero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits(change: impl FnOnce(&mut RateLimitSettings)) -> RateLimits {
        let mut settings = RateLimitSettings::default();
        change(&mut settings);
        RateLimits::new(&settings)
    }

    fn from(address: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(format!("{address}:40000").parse().unwrap())
            .to_http_request()
    }

    #[test]
    fn a_credential_gets_its_burst_then_429_with_a_wait() {
        let limits = limits(|s| {
            s.api_key_per_second = 1;
            s.api_key_burst = 3;
        });
        let req = from("203.0.113.7");
        for _ in 0..3 {
            limits.admit(&req, Credential::Bearer("key-a")).unwrap();
        }
        let refused = limits.admit(&req, Credential::Bearer("key-a")).unwrap_err();
        assert_eq!(refused.code(), super::super::error::ErrorCode::RateLimited);
        // Another key, even from the same client, has its own quota; so does the same
        // string used as a FreJun key.
        limits.admit(&req, Credential::Bearer("key-b")).unwrap();
        limits.admit(&req, Credential::FrejunKey("key-a")).unwrap();
    }

    #[test]
    fn a_client_past_its_failures_is_refused_whatever_it_presents() {
        let limits = limits(|s| s.failed_auth_burst = 2);
        let attacker = from("198.51.100.9");
        for _ in 0..3 {
            limits
                .admit(&attacker, Credential::Bearer("guess"))
                .unwrap();
            limits.record_failure(&attacker);
        }
        let refused = limits.admit(&attacker, Credential::Bearer("fresh-guess"));
        assert!(refused.is_err(), "blocked before any lookup");
        let neighbour = from("198.51.100.10");
        limits
            .admit(&neighbour, Credential::Bearer("own-key"))
            .unwrap();
    }

    #[test]
    fn limits_can_be_off_or_spare_loopback() {
        let off = limits(|s| {
            s.enabled = false;
            s.api_key_burst = 1;
        });
        let req = from("203.0.113.7");
        for _ in 0..10 {
            off.admit(&req, Credential::Bearer("k")).unwrap();
        }
        let loopback = limits(|s| {
            s.exempt_loopback = true;
            s.api_key_burst = 1;
        });
        for _ in 0..10 {
            loopback
                .admit(&from("127.0.0.1"), Credential::Bearer("k"))
                .unwrap();
        }
        loopback.admit(&req, Credential::Bearer("k")).unwrap();
        assert!(loopback.admit(&req, Credential::Bearer("k")).is_err());
    }

    #[test]
    fn the_client_is_read_from_trusted_proxies_only() {
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        let header = Some("1.1.1.1, 203.0.113.7, 10.0.0.2");
        assert_eq!(client_address(peer, header, 0), peer);
        assert_eq!(
            client_address(peer, header, 1),
            Some(IpAddr::from([10, 0, 0, 2]))
        );
        assert_eq!(
            client_address(peer, header, 2),
            Some(IpAddr::from([203, 0, 113, 7]))
        );
        assert_eq!(
            client_address(peer, header, 4),
            peer,
            "fewer entries than proxies"
        );
        assert_eq!(client_address(peer, None, 1), peer);
        assert_eq!(client_address(peer, Some("not-an-address"), 1), peer);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::from([203, 0, 113, 7]));
    }

    #[test]
    fn pruning_forgets_idle_credentials() {
        let limits = limits(|s| s.api_key_per_second = 1_000);
        let req = from("203.0.113.7");
        limits.admit(&req, Credential::Bearer("k")).unwrap();
        assert_eq!(limits.tracked(), 1);
        std::thread::sleep(Duration::from_millis(5));
        limits.prune();
        assert_eq!(limits.tracked(), 0);
    }
}
