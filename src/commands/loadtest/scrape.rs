//! The server's own figures during a load test: `GET /metrics` (the Prometheus text exposition
//! format that `telemetry::metrics` renders, behind `metrics.token`) fetched and read into the
//! few series the metrics check needs (`super::metrics_check`).
//!
//! The parser is deliberately small and tolerant rather than a full implementation of the
//! format: it reads sample lines (`name{label="value",…} value [timestamp]`), skips comments
//! (`# HELP`, `# TYPE`) and blank lines, and counts (instead of failing on) any line it cannot
//! read, so an exporter upgrade that adds something new to the text cannot break a load test.
//! Queries are a sum over every label, or sums grouped by one label. A series that is absent
//! reads as 0: the exporter shows a counter or histogram only once something was recorded
//! in it.

use std::collections::BTreeMap;
use std::time::Duration;

use url::Url;

use crate::domain::secret::SecretString;

/// How long one scrape may take. A render is a few milliseconds; a saturated server answers
/// late, and a check that gives up is reported as failed rather than holding up the run.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(15);

/// One sample line: a series and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One scrape's samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Scrape {
    samples: Vec<Sample>,
    /// Lines that were neither a comment, blank, nor a readable sample.
    pub unreadable_lines: usize,
}

impl Scrape {
    /// Reads the text exposition format; lines it cannot read are counted and skipped.
    pub(crate) fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_sample(line) {
                Some(sample) => scrape.samples.push(sample),
                None => scrape.unreadable_lines += 1,
            }
        }
        scrape
    }

    /// Every series named `name` summed over its labels; 0 when there is none.
    pub(crate) fn sum(&self, name: &str) -> f64 {
        self.named(name).map(|sample| sample.value).sum()
    }

    /// The series named `name` summed per value of `label` (series without the label count
    /// under `""`).
    pub(crate) fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for sample in self.named(name) {
            let key = sample.label(label).unwrap_or_default().to_owned();
            *sums.entry(key).or_insert(0.0) += sample.value;
        }
        sums
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> {
        self.samples
            .iter()
            .filter(move |sample| sample.name == name)
    }
}

/// `name [{labels}] value [timestamp]`, or `None` for anything else.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next()?)?;
    // An optional timestamp (milliseconds) may follow; nothing else may.
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `label="value",…}` (a trailing comma allowed); returns what follows the closing brace.
fn parse_labels<'a>(mut text: &'a str, labels: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Some(rest);
        }
        let name_end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        let name = &text[..name_end];
        if name.is_empty() {
            return None;
        }
        text = text[name_end..].trim_start().strip_prefix('=')?;
        text = text.trim_start().strip_prefix('"')?;
        let (value, rest) = parse_quoted(text)?;
        labels.push((name.to_owned(), value));
        text = rest.trim_start();
        if let Some(rest) = text.strip_prefix(',') {
            text = rest;
        } else if !text.starts_with('}') {
            return None;
        }
    }
}

/// A label value up to its closing quote, with the format's escapes (`\\`, `\"`, `\n`)
/// undone; returns the value and what follows the quote.
fn parse_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[index + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                // `\\`, `\"`, and (tolerantly) any other escaped character as itself.
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN` (Rust's float parser takes all of them).
fn parse_value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

/// Why a scrape gave nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered 404: the server has no metrics.token, so /metrics is off")]
    Off { url: String },
    #[error("{url} answered 401: the metrics token was refused")]
    Refused { url: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// A server's `GET /metrics` and the token it takes.
#[derive(Debug, Clone)]
pub(crate) struct MetricsEndpoint {
    client: reqwest::Client,
    url: Url,
    token: SecretString,
}

impl MetricsEndpoint {
    /// `/metrics` under `base_url`.
    pub(crate) fn new(base_url: &Url, token: SecretString) -> anyhow::Result<MetricsEndpoint> {
        let client = reqwest::Client::builder().timeout(SCRAPE_TIMEOUT).build()?;
        Ok(MetricsEndpoint {
            client,
            url: base_url.join("metrics")?,
            token,
        })
    }

    /// One scrape.
    pub(crate) async fn scrape(&self) -> Result<Scrape, ScrapeError> {
        let url = self.url.to_string();
        let unreachable = |error: reqwest::Error| ScrapeError::Unreachable {
            url: url.clone(),
            reason: error.to_string(),
        };
        let response = self
            .client
            .get(self.url.clone())
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(unreachable)?;
        match response.status().as_u16() {
            200 => {}
            404 => return Err(ScrapeError::Off { url }),
            401 => return Err(ScrapeError::Refused { url }),
            status => return Err(ScrapeError::Status { url, status }),
        }
        let text = response.text().await.map_err(unreachable)?;
        Ok(Scrape::parse(&text))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::telemetry::metrics;

    /// What `GET /metrics` answers mid-run (the shape `metrics-exporter-prometheus` renders),
    /// with a few things the format allows that it does not write today: a timestamp, spaces
    /// around labels, a trailing comma, escaped quotes, and a line the parser cannot read.
    pub(crate) const SAMPLE: &str = r#"# HELP voxbridge_live_calls Live calls on this instance, by backend and codec.
# TYPE voxbridge_live_calls gauge
voxbridge_live_calls{backend="openai_realtime",codec="pcm24k"} 97
voxbridge_live_calls{backend="elevenlabs_convai",codec="pcm_8000/pcm_8000"} 3
voxbridge_live_calls{backend="openai_realtime",codec="pcmu"} 0

# HELP voxbridge_calls_ended_total Calls ended, by end reason.
# TYPE voxbridge_calls_ended_total counter
voxbridge_calls_ended_total{reason="caller_hung_up"} 120 1733580000000
voxbridge_calls_ended_total{ reason = "ai_error" , } 2
voxbridge_calls_ended_total{reason="odd \"quoted\" \\ value\n"} 1

# TYPE voxbridge_admission_refusals_total counter
voxbridge_admission_refusals_total{stage="flow",reason="concurrency_limit"} 4
voxbridge_admission_refusals_total{stage="media_stream",reason="bad_token"} 1

# HELP voxbridge_bridge_frame_latency_seconds Time the bridge spends on one frame, from its arrival to the last send it caused.
# TYPE voxbridge_bridge_frame_latency_seconds histogram
voxbridge_bridge_frame_latency_seconds_bucket{le="0.0001"} 51000
voxbridge_bridge_frame_latency_seconds_bucket{le="0.001"} 60200
voxbridge_bridge_frame_latency_seconds_bucket{le="+Inf"} 60312
voxbridge_bridge_frame_latency_seconds_sum 4.25
voxbridge_bridge_frame_latency_seconds_count 60312
# TYPE voxbridge_first_response_seconds summary
voxbridge_first_response_seconds{quantile="0.5"} NaN
voxbridge_draining 0
this line { is not a sample
"#;

    #[test]
    fn sums_over_labels_and_groups_by_one() {
        let scrape = Scrape::parse(SAMPLE);
        assert_eq!(scrape.sum("voxbridge_live_calls"), 100.0);
        assert_eq!(scrape.sum("voxbridge_admission_refusals_total"), 5.0);
        assert_eq!(
            scrape.sum("voxbridge_bridge_frame_latency_seconds_count"),
            60_312.0
        );
        let ended = scrape.by_label("voxbridge_calls_ended_total", "reason");
        assert_eq!(ended.get("caller_hung_up"), Some(&120.0), "a timestamp");
        assert_eq!(ended.get("ai_error"), Some(&2.0), "spaces, trailing comma");
        assert_eq!(
            ended.get("odd \"quoted\" \\ value\n"),
            Some(&1.0),
            "escapes"
        );
        let by_stage = scrape.by_label("voxbridge_admission_refusals_total", "stage");
        assert_eq!(by_stage.get("media_stream"), Some(&1.0));
        assert_eq!(scrape.unreadable_lines, 1);
    }

    #[test]
    fn absent_series_are_zero_and_special_values_read() {
        let scrape = Scrape::parse(SAMPLE);
        assert_eq!(scrape.sum("voxbridge_barge_ins_total"), 0.0);
        assert!(scrape.by_label("voxbridge_barge_ins_total", "x").is_empty());
        // Not a prefix match: `_count` is its own series.
        assert_eq!(scrape.sum("voxbridge_bridge_frame_latency_seconds"), 0.0);
        assert!(scrape.sum("voxbridge_first_response_seconds").is_nan());
        let inf = parse_sample(r#"x_bucket{le="+Inf"} +Inf"#).unwrap();
        assert_eq!(inf.value, f64::INFINITY);
        assert_eq!(
            by_label_of("voxbridge_draining 0", "voxbridge_draining", "reason"),
            vec![(String::new(), 0.0)],
            "a series without the label groups under \"\""
        );
    }

    fn by_label_of(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
        Scrape::parse(text)
            .by_label(name, label)
            .into_iter()
            .collect()
    }

    #[test]
    fn malformed_lines_are_counted_not_fatal() {
        for line in [
            "name",
            "name{a=\"1\"}",
            "name{a=\"1\" 2",
            "name{a=1} 2",
            "name{=\"1\"} 2",
            "name 2 3 4",
            "name 2 later",
            "name two",
            "9name 1",
            "{a=\"1\"} 2",
            "name{a=\"unterminated} 2",
        ] {
            assert_eq!(parse_sample(line), None, "{line}");
        }
        let scrape = Scrape::parse("name\nname 2\n");
        assert_eq!((scrape.sum("name"), scrape.unreadable_lines), (2.0, 1));
    }

    /// The parser against what this crate's own recorder renders (a reason no other test
    /// uses, since the recorder is shared by every test in the process).
    #[test]
    fn reads_what_the_servers_recorder_renders() {
        metrics::install();
        let before = Scrape::parse(&metrics::render([], false));
        metrics::call_ended("loadtest_scrape_test");
        metrics::call_ended("loadtest_scrape_test");
        let frames = metrics::frame_latency();
        metrics::record_frame(&frames, Duration::from_micros(250));
        let after = Scrape::parse(&metrics::render(
            [("openai_realtime", "pcmu".to_owned())],
            false,
        ));
        assert_eq!(after.unreadable_lines, 0);
        let ended = |scrape: &Scrape| {
            scrape
                .by_label(metrics::CALLS_ENDED, "reason")
                .get("loadtest_scrape_test")
                .copied()
                .unwrap_or(0.0)
        };
        assert_eq!(ended(&after) - ended(&before), 2.0);
        let count = format!("{}_count", metrics::FRAME_LATENCY_SECONDS);
        assert!(after.sum(&count) - before.sum(&count) >= 1.0);
        let live = after.by_label(metrics::LIVE_CALLS, "codec");
        assert_eq!(live.get("pcmu"), Some(&1.0), "{live:?}");
    }
}
