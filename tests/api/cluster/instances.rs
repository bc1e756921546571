//! Instances of the real binary (`voxbridge serve`) over one database of the test's own, with
//! the fake OpenAI and the fake Teler they call. Every process is killed (SIGKILL) and reaped
//! when its handle is dropped, so none outlives a failing test.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use reqwest::StatusCode;
use voxbridge::sim::fake_openai::{Behaviour, FakeOpenAi};
use voxbridge::sim::fake_teler::FakeTeler;

use crate::helpers::{TestApp, TestDatabase, poll_until, serve_binary};

/// The FreJun key `calling_tenant` stores (the fake Teler accepts any).
pub const FREJUN_KEY: &str = "fj-test-key-0001";

/// `metrics.token` of every instance, for `GET /metrics`.
pub const METRICS_TOKEN: &str = "cluster-test-metrics-token-0123456789abcdef";

/// One `voxbridge serve` process.
pub struct Instance {
    /// Declared first: the process is killed before the handle below drops the database.
    process: Process,
    /// Its `cluster.instance_id`.
    pub id: String,
    pub app: TestApp,
    _state_dir: tempfile::TempDir,
}

/// A child process, killed and reaped on drop unless it has exited already.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Instance {
    /// Starts `voxbridge serve` named `<label>-<random>` over `database`, calling `openai` and
    /// `teler`, with the bridge's short test timers and `env` on top; returns once `/ready`
    /// answers.
    pub async fn start(
        database: TestDatabase,
        label: &str,
        openai: &FakeOpenAi,
        teler: &FakeTeler,
        env: &[(&str, &str)],
    ) -> Instance {
        let id = format!(
            "{label}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (realtime, teler_url) = (openai.url().to_string(), teler.base_url().to_string());
        let mut all = vec![
            ("VOXBRIDGE__CLUSTER__INSTANCE_ID", id.as_str()),
            ("VOXBRIDGE__OPENAI__REALTIME_URL", realtime.as_str()),
            ("VOXBRIDGE__OPENAI__CONNECT_TIMEOUT_MS", "2000"),
            ("VOXBRIDGE__FREJUN__API_BASE_URL", teler_url.as_str()),
            ("VOXBRIDGE__BRIDGE__HEARTBEAT_INTERVAL_SECS", "1"),
            ("VOXBRIDGE__BRIDGE__PEER_TIMEOUT_SECS", "3"),
            ("VOXBRIDGE__BRIDGE__LOG_FLUSH_INTERVAL_MS", "200"),
            ("VOXBRIDGE__METRICS__TOKEN", METRICS_TOKEN),
        ];
        all.extend_from_slice(env);
        let (child, app, state_dir) = serve_binary(database, &all).await;
        Instance {
            process: Process(child),
            id,
            app,
            _state_dir: state_dir,
        }
    }

    /// Sends the process `signal` (`TERM`, `INT`, …) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.process.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIG{signal} sent");
    }

    /// SIGKILL: the process dies at once, without a word to anyone.
    pub fn kill(&mut self) {
        self.process.0.kill().expect("SIGKILL sent");
        self.process.0.wait().expect("the killed process is reaped");
    }

    /// How the process exited, if it does within `timeout`.
    pub async fn exited(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let process = &mut self.process.0;
        poll_until(
            timeout,
            || std::future::ready(process.try_wait().expect("the process can be waited on")),
            Option::is_some,
        )
        .await
    }

    /// The value of the sample `name` (with its labels, e.g. `x_count{outcome="done"}`) in this
    /// instance's `GET /metrics`; 0 when it is not there yet.
    pub async fn metric(&self, name: &str) -> f64 {
        let response = self.app.get_as("/metrics", METRICS_TOKEN).await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.expect("metrics read");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().expect("a number"))
    }
}

/// Two instances, A and B, over one fresh database, and the fakes they share.
pub struct Cluster {
    pub a: Instance,
    pub b: Instance,
    pub openai: FakeOpenAi,
    pub teler: FakeTeler,
}

impl Cluster {
    /// Starts the fakes (OpenAI behaving as `behaviour`), then A and B with `env` each.
    pub async fn start(behaviour: Behaviour, env: &[(&str, &str)]) -> Cluster {
        let openai = FakeOpenAi::start(behaviour)
            .await
            .expect("fake OpenAI starts");
        let teler = FakeTeler::start().await.expect("fake Teler starts");
        let database = TestDatabase::migrated().await;
        let second = database.another_handle();
        let (a, b) = tokio::join!(
            Instance::start(database, "a", &openai, &teler, env),
            Instance::start(second, "b", &openai, &teler, env),
        );
        Cluster {
            a,
            b,
            openai,
            teler,
        }
    }
}
