//! [`Shared`]: what the whole service shares, built once per process. The settings, the MongoDB
//! handle, the keyring that encrypts tenants' secrets and the media-token signer have one owner
//! here; the call control plane, the media bridge and the HTTP layer each hold an `Arc` of it
//! rather than copies of their own. The instance's name and its drain state live here too: the
//! HTTP layer, the bridge and the call control plane all read them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::crypto::Keyring;
use crate::domain::cluster::InstanceId;
use crate::frejun::media_token::MediaTokens;
use crate::outbound::OutboundHttp;
use crate::settings::Settings;
use crate::storage::Storage;

/// See the module docs.
#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub storage: Storage,
    /// Encrypts and decrypts tenants' credentials (from `security.master_key` and its
    /// predecessors).
    pub keyring: Keyring,
    /// Signs and checks the tokens in the media-stream URLs we give FreJun.
    pub media_tokens: MediaTokens,
    /// The SSRF-safe client for URLs tenants control (HTTP tools, webhooks).
    pub outbound: OutboundHttp,
    /// This instance's name among those sharing the database (`cluster.instance_id`).
    pub instance_id: InstanceId,
    /// Whether this instance is draining (SIGTERM: no new calls, live ones kept).
    pub drain: Drain,
}

impl Shared {
    /// Derives the keyring and the media-token signer from the settings.
    pub fn new(settings: Settings, storage: Storage) -> Arc<Self> {
        Arc::new(Self {
            keyring: settings.security.keyring(),
            media_tokens: MediaTokens::new(settings.security.url_signing_key.clone()),
            outbound: OutboundHttp::new(&settings.outbound.allow),
            instance_id: instance_id(&settings),
            drain: Drain::default(),
            settings,
            storage,
        })
    }
}

/// The configured instance name, else a fresh one (see `cluster.instance_id`).
fn instance_id(settings: &Settings) -> InstanceId {
    settings
        .cluster
        .instance_id
        .as_deref()
        .and_then(InstanceId::parse)
        .unwrap_or_else(|| {
            // The kernel's name for the host (a pod's name under Kubernetes).
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_default();
            InstanceId::generate(host.trim(), std::process::id(), rand::random())
        })
}

/// An instance's drain: started by the first SIGTERM (new calls are refused, live ones keep
/// going), and its deadline, when the calls still live are asked to say the closing line and
/// end (`startup::drain`).
#[derive(Debug, Clone, Default)]
pub struct Drain {
    started: CancellationToken,
    deadline: CancellationToken,
}

impl Drain {
    /// Stops admitting calls.
    pub fn start(&self) {
        self.started.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.started.is_cancelled()
    }

    /// The drain's time is up: live calls wind down.
    pub fn reach_deadline(&self) {
        self.started.cancel();
        self.deadline.cancel();
    }

    /// Whether the drain's deadline has come (sessions look at each flush).
    pub fn past_deadline(&self) -> bool {
        self.deadline.is_cancelled()
    }
}
