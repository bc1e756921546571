//! Several instances over one database: an instance's name, and the owner a live call's log
//! records (which instance bridges it, until when its lease says it is alive).

use std::fmt;

use bson::DateTime;
use serde::{Deserialize, Serialize};

/// The name of one running instance, unique among those sharing a database: what call logs'
/// `owner` and control commands are addressed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// Longest name accepted (a host name, a pid and a random suffix fit easily).
    const MAX_LEN: usize = 64;

    /// Whether `name` is acceptable: 1–64 letters, digits, `.`, `_` and `-`, so it can be
    /// logged, labelled and matched without quoting.
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    /// `name` if it is valid.
    pub fn parse(name: &str) -> Option<Self> {
        Self::is_valid(name).then(|| Self(name.to_owned()))
    }

    /// A fresh name from the host's name, the process id and a random suffix: a restarted
    /// process is a new instance (its calls did not survive it).
    pub fn generate(host: &str, pid: u32, random: u32) -> Self {
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(40)
            .collect();
        let host = if host.is_empty() { "voxbridge" } else { &host };
        Self(format!("{host}-{pid}-{random:08x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The instance bridging a live call, as its call log records it: set when the media stream
/// is admitted, its lease renewed with the call's concurrency slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallOwner {
    pub instance_id: InstanceId,
    pub started_at: DateTime,
    /// Past this, the owner is presumed lost (the reaper then closes the call).
    pub lease_until: DateTime,
}

impl CallOwner {
    /// Whether the owner's lease still runs at `now`.
    pub fn is_alive(&self, now: DateTime) -> bool {
        self.lease_until > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_and_bounded() {
        assert!(InstanceId::is_valid("voxbridge-7d9f-1.eu_west"));
        for bad in ["", "a b", "a/b", "ünï", &"x".repeat(65)] {
            assert!(!InstanceId::is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn generated_names_are_valid_whatever_the_host_is_called() {
        for host in ["pod-7d9f", "", "host name/with:odd chars", &"h".repeat(200)] {
            let id = InstanceId::generate(host, 4242, 0xdead_beef);
            assert!(InstanceId::is_valid(id.as_str()), "{id}");
            assert!(id.as_str().ends_with("-4242-deadbeef"), "{id}");
        }
    }

    #[test]
    fn an_owner_is_alive_until_its_lease_ends() {
        let owner = CallOwner {
            instance_id: InstanceId::parse("a").unwrap(),
            started_at: DateTime::from_millis(0),
            lease_until: DateTime::from_millis(1_000),
        };
        assert!(owner.is_alive(DateTime::from_millis(999)));
        assert!(!owner.is_alive(DateTime::from_millis(1_000)));
    }
}
