//! The progress line on stderr while calls run: elapsed time, live calls, ok/failed so far,
//! server CPU and RSS, and the generator's CPU.
//!
//! On a terminal the line is rewritten in place every second; otherwise (a log file, CI) a
//! new line is printed every five seconds so the log stays readable.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::call::CallCounters;
use super::proc_stats::SampleView;
use super::usage;

/// How often the line is refreshed on a terminal, and printed otherwise.
const TERMINAL_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Prints progress until stopped.
pub(crate) struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts printing; `calls` is the number of calls in the run.
    pub(crate) fn start(
        calls: usize,
        counters: Arc<CallCounters>,
        samples: SampleView,
    ) -> Progress {
        let stop = CancellationToken::new();
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(print_until_stopped(
            calls,
            counters,
            samples,
            terminal,
            stop.clone(),
        ));
        Progress { stop, task }
    }

    /// Stops and ends the line.
    pub(crate) async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn print_until_stopped(
    calls: usize,
    counters: Arc<CallCounters>,
    samples: SampleView,
    terminal: bool,
    stop: CancellationToken,
) {
    let started = tokio::time::Instant::now();
    let every = if terminal { TERMINAL_EVERY } else { LOG_EVERY };
    let mut ticks = tokio::time::interval_at(started + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let line = progress_line(started.elapsed(), calls, &counters, &samples);
        let mut stderr = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not end the run.
        let _ = if terminal {
            write!(stderr, "\r{line:<110}")
        } else {
            writeln!(stderr, "{line}")
        };
        let _ = stderr.flush();
    }
    if terminal {
        let _ = writeln!(std::io::stderr());
    }
}

fn progress_line(
    elapsed: Duration,
    calls: usize,
    counters: &CallCounters,
    samples: &SampleView,
) -> String {
    let (server_cpu, server_rss, generator_cpu) = match samples.last_two() {
        Some((earlier, later)) => (
            usage::cpu_percent(&earlier, &later, usage::server)
                .map_or_else(|| "-".to_owned(), |percent| format!("{percent:.0}%")),
            later.server.map_or_else(
                || "-".to_owned(),
                |server| format!("{:.0} MiB", server.rss_kib as f64 / 1_024.0),
            ),
            usage::cpu_percent(&earlier, &later, usage::generator)
                .map_or_else(|| "-".to_owned(), |percent| format!("{percent:.0}%")),
        ),
        None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
    };
    format!(
        "loadtest {:>6.1} s  live {}/{calls}  ok {}  failed {}  server CPU {server_cpu}  \
         RSS {server_rss}  generator CPU {generator_cpu}",
        elapsed.as_secs_f64(),
        counters.live.load(Ordering::Relaxed),
        counters.ok.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
    )
}
