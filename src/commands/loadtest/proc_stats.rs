//! CPU time and memory of a process, read from Linux's `/proc`, sampled through a load test.
//!
//! - CPU: `utime + stime` of `/proc/<pid>/stat` (fields 14 and 15, in clock ticks; the tick
//!   rate comes from `getconf CLK_TCK`, 100 when that fails). Threads are included; children
//!   are not.
//! - Memory: `VmRSS` (resident now) and `VmHWM` (peak resident) of `/proc/<pid>/status`, in
//!   KiB.
//!
//! - Cores: each core's busy and total time from `/proc/stat` (busy is everything but idle and
//!   iowait), to show whether the machine itself was saturated: MongoDB, the kernel's network
//!   processing and other programs share the cores with the processes measured.
//!
//! The [`Sampler`] reads the server (when its PID is known), the load generator itself
//! (`/proc/self`, to show whether the generator kept up), MongoDB (when its PID is known: given,
//! or found for a `mongod` on loopback) and the cores every [`SAMPLE_INTERVAL`], together with
//! the number of live calls, so CPU can later be divided by call-minutes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

/// How often the sampler reads `/proc`.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// Clock ticks per second assumed when `getconf CLK_TCK` cannot be run (Linux's usual value).
const FALLBACK_CLOCK_TICKS: u64 = 100;

/// Which process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// The load generator itself.
    Current,
    Pid(u32),
}

impl Process {
    fn dir(self) -> PathBuf {
        match self {
            Process::Current => PathBuf::from("/proc/self"),
            Process::Pid(pid) => PathBuf::from(format!("/proc/{pid}")),
        }
    }
}

/// One reading of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcSnapshot {
    /// User plus system CPU time since the process started.
    pub cpu_seconds: f64,
    /// Resident memory now.
    pub rss_kib: u64,
    /// Peak resident memory so far.
    pub hwm_kib: u64,
}

/// Reads [`ProcSnapshot`]s, knowing the clock-tick rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcReader {
    ticks_per_second: u64,
}

impl ProcReader {
    /// Asks `getconf CLK_TCK` once.
    pub(crate) fn new() -> ProcReader {
        ProcReader {
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    /// `None` when the process is gone or `/proc` is not there (not Linux).
    pub(crate) fn read(&self, process: Process) -> Option<ProcSnapshot> {
        let dir = process.dir();
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        Some(ProcSnapshot {
            cpu_seconds: parse_cpu_ticks(&stat)? as f64 / self.ticks_per_second.max(1) as f64,
            rss_kib: parse_status_kib(&status, "VmRSS")?,
            hwm_kib: parse_status_kib(&status, "VmHWM")?,
        })
    }
}

impl Default for ProcReader {
    fn default() -> Self {
        ProcReader::new()
    }
}

/// `getconf CLK_TCK`, or 100.
pub(crate) fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(FALLBACK_CLOCK_TICKS)
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are counted from the
/// last `)`.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: field 3 (state) is index 0, so utime (14) is index 11, stime (15) 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   <n> kB` line of `/proc/<pid>/status`, in KiB.
pub(crate) fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status_value(status, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The text after `Key:` on a `/proc/<pid>/status` line, trimmed.
pub(crate) fn status_value<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == key).then(|| value.trim())
    })
}

/// The CPUs a process may run on (`Cpus_allowed_list`, e.g. `0` or `0-1`).
pub(crate) fn cpus_allowed(process: Process) -> Option<String> {
    let status = std::fs::read_to_string(process.dir().join("status")).ok()?;
    status_value(&status, "Cpus_allowed_list").map(str::to_owned)
}

/// The soft "Max open files" limit from the text of `/proc/<pid>/limits` (`None` when
/// unlimited or unreadable).
pub(crate) fn parse_max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's soft open-files limit.
pub(crate) fn max_open_files() -> Option<u64> {
    parse_max_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// One core's time since boot, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreTicks {
    /// The core's number (`cpu3` is 3).
    pub cpu: usize,
    /// Everything but idle and iowait (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    pub total: u64,
}

/// The per-core lines (`cpuN …`) of the text of `/proc/stat`; the all-cores line is skipped.
pub(crate) fn parse_core_ticks(stat: &str) -> Vec<CoreTicks> {
    stat.lines()
        .filter_map(|line| {
            let (name, fields) = line.split_once(' ')?;
            let cpu = name.strip_prefix("cpu")?.parse::<usize>().ok()?;
            let values: Vec<u64> = fields
                .split_whitespace()
                .map(|value| value.parse().ok())
                .collect::<Option<_>>()?;
            // user nice system idle iowait irq softirq steal; guest time is already in user.
            let total: u64 = values.iter().take(8).sum();
            let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
            Some(CoreTicks {
                cpu,
                busy: total.saturating_sub(idle),
                total,
            })
        })
        .collect()
}

/// Every core's ticks now (empty when `/proc/stat` cannot be read).
pub(crate) fn read_core_ticks() -> Vec<CoreTicks> {
    std::fs::read_to_string("/proc/stat")
        .map(|stat| parse_core_ticks(&stat))
        .unwrap_or_default()
}

/// The PID of the `mongod` serving `uri`, when the URI names one server on this machine and a
/// `mongod` started with `--port <its port>` runs here (as the local development MongoDB and
/// the test suite's do). `None` for anything else.
pub(crate) fn find_local_mongod(uri: &str) -> Option<u32> {
    let url = Url::parse(uri).ok()?;
    let host = url.host_str()?;
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    let port = url.port().unwrap_or(27_017);
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        is_mongod_on_port(&String::from_utf8_lossy(&cmdline), port).then_some(pid)
    })
}

/// Whether a `/proc/<pid>/cmdline` (arguments separated by NUL) is a `mongod` on `port`.
pub(crate) fn is_mongod_on_port(cmdline: &str, port: u16) -> bool {
    let mut args = cmdline.split('\0');
    let is_mongod = args
        .next()
        .and_then(|program| program.rsplit('/').next())
        .is_some_and(|name| name == "mongod");
    let port = port.to_string();
    let mut previous = "";
    let on_port = args.any(|arg| {
        let found = (previous == "--port" && arg == port)
            || arg.strip_prefix("--port=") == Some(port.as_str());
        previous = arg;
        found
    });
    is_mongod && on_port
}

/// One sampling instant.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub at: Instant,
    /// Calls streaming at that instant.
    pub live_calls: usize,
    pub server: Option<ProcSnapshot>,
    pub generator: Option<ProcSnapshot>,
    pub mongodb: Option<ProcSnapshot>,
    pub cores: Vec<CoreTicks>,
}

/// Samples the processes and the cores in the background until stopped.
pub(crate) struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    targets: Targets,
}

/// What each sample reads.
#[derive(Clone)]
struct Targets {
    reader: ProcReader,
    server: Option<Process>,
    mongodb: Option<Process>,
    live_calls: Arc<AtomicUsize>,
}

impl Targets {
    fn sample(&self) -> Sample {
        let read = |process: Option<Process>| process.and_then(|process| self.reader.read(process));
        Sample {
            at: Instant::now(),
            live_calls: self.live_calls.load(Ordering::Relaxed),
            server: read(self.server),
            generator: read(Some(Process::Current)),
            mongodb: read(self.mongodb),
            cores: read_core_ticks(),
        }
    }
}

impl Sampler {
    /// Starts sampling now (the first sample is taken at once).
    pub(crate) fn start(
        reader: ProcReader,
        server_pid: Option<u32>,
        mongodb_pid: Option<u32>,
        live_calls: Arc<AtomicUsize>,
    ) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let targets = Targets {
            reader,
            server: server_pid.map(Process::Pid),
            mongodb: mongodb_pid.map(Process::Pid),
            live_calls,
        };
        let task = tokio::spawn(sample_until_stopped(
            targets.clone(),
            Arc::clone(&samples),
            stop.clone(),
        ));
        Sampler {
            samples,
            stop,
            task,
            targets,
        }
    }

    /// A sample taken now (also kept).
    pub(crate) fn sample_now(&self) -> Sample {
        let sample = self.targets.sample();
        push(&self.samples, sample.clone());
        sample
    }

    /// A read-only handle on the samples so far (for the progress line).
    pub(crate) fn view(&self) -> SampleView {
        SampleView(Arc::clone(&self.samples))
    }

    /// Stops sampling (after one final sample) and returns every sample in time order.
    pub(crate) async fn finish(self) -> Vec<Sample> {
        self.sample_now();
        self.stop.cancel();
        let _ = self.task.await;
        let mut samples =
            std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner));
        samples.sort_by_key(|sample| sample.at);
        samples
    }
}

/// Reads the samples a [`Sampler`] has taken so far.
#[derive(Clone)]
pub(crate) struct SampleView(Arc<Mutex<Vec<Sample>>>);

impl SampleView {
    /// The latest two samples, oldest first.
    pub(crate) fn last_two(&self) -> Option<(Sample, Sample)> {
        let samples = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match samples.as_slice() {
            [.., earlier, later] => Some((earlier.clone(), later.clone())),
            _ => None,
        }
    }
}

async fn sample_until_stopped(
    targets: Targets,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => push(&samples, targets.sample()),
        }
    }
}

fn push(samples: &Mutex<Vec<Sample>>, sample: Sample) {
    samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(sample);
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (voxbridge (serve)) S 1 4242 4242 0 -1 4194560 9133 0 12 0 \
                        1534 287 0 0 20 0 9 0 2110531 1431592960 13542 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17987 0 0 0 17 0 0 0 0 0 0";

    const STATUS: &str = "Name:\tvoxbridge\nUmask:\t0022\nState:\tS (sleeping)\n\
                          VmPeak:\t 1398040 kB\nVmHWM:\t   61236 kB\nVmRSS:\t   54168 kB\n\
                          Threads:\t9\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n";

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
                          Max cpu time              unlimited            unlimited            seconds   \n\
                          Max open files            1024                 524288               files     \n";

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_parentheses_in_the_name() {
        assert_eq!(parse_cpu_ticks(STAT), Some(1534 + 287));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_lines_give_kib_and_the_allowed_cpus() {
        assert_eq!(parse_status_kib(STATUS, "VmRSS"), Some(54_168));
        assert_eq!(parse_status_kib(STATUS, "VmHWM"), Some(61_236));
        assert_eq!(parse_status_kib(STATUS, "VmSwap"), None);
        assert_eq!(status_value(STATUS, "Cpus_allowed_list"), Some("0"));
    }

    #[test]
    fn the_soft_open_files_limit_is_read() {
        assert_eq!(parse_max_open_files(LIMITS), Some(1_024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[test]
    fn core_lines_give_busy_and_total_ticks() {
        let stat = "cpu  300 0 200 1000 50 0 10 0 0 0\n\
                    cpu0 100 0 100 500 25 0 5 0 0 0\n\
                    cpu1 200 0 100 500 25 0 5 0 0 0\n\
                    intr 12345 0 0\n";
        let cores = parse_core_ticks(stat);
        let expected = vec![
            CoreTicks {
                cpu: 0,
                busy: 205,
                total: 730,
            },
            CoreTicks {
                cpu: 1,
                busy: 305,
                total: 830,
            },
        ];
        assert_eq!(cores, expected);
        assert!(parse_core_ticks("garbage\n").is_empty());
    }

    #[test]
    fn a_mongod_is_recognised_by_its_port_argument() {
        // As /proc/<pid>/cmdline has them: NUL after each argument.
        let cmdline = |args: &[&str]| {
            args.iter()
                .map(|arg| format!("{arg}\0"))
                .collect::<String>()
        };
        let mongod = cmdline(&[
            "/cache/mongodb-6.0.5/mongod",
            "--dbpath",
            "/tmp/db",
            "--port",
            "41811",
            "--bind_ip",
            "127.0.0.1",
        ]);
        assert!(is_mongod_on_port(&mongod, 41_811));
        assert!(!is_mongod_on_port(&mongod, 27_017));
        assert!(is_mongod_on_port(
            &cmdline(&["mongod", "--port=27017"]),
            27_017
        ));
        let shell = cmdline(&["/usr/bin/mongosh", "--port", "41811"]);
        assert!(!is_mongod_on_port(&shell, 41_811));
        // Remote servers are never looked for.
        assert_eq!(find_local_mongod("mongodb://db.example.com:27017/"), None);
        assert_eq!(find_local_mongod("not a uri"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let snapshot = ProcReader::new()
            .read(Process::Current)
            .expect("/proc/self is readable on Linux");
        assert!(snapshot.rss_kib > 0);
        assert!(snapshot.hwm_kib >= snapshot.rss_kib);
        assert!(snapshot.cpu_seconds >= 0.0);
    }
}
