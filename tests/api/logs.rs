//! The log lines this test process writes, captured as JSON (the production format) so a test
//! can check what a line says and which span it was written in. Installed once, as the global
//! subscriber, the first time a test asks for it; only `voxbridge`'s own lines at INFO and above
//! are kept.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

/// Every captured line, shared by all tests of the process.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn buffer() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        tracing_subscriber::fmt()
            .with_env_filter("voxbridge=info")
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer(buffer.clone())
            .try_init()
            .expect("no other test installs a global subscriber");
        buffer
    })
}

/// Starts capturing (call before the code whose lines a test wants to see).
pub fn capture() {
    buffer();
}

/// The captured lines so far whose message is `message`.
pub fn lines_with_message(message: &str) -> Vec<Value> {
    let bytes = buffer()
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == message)
        .collect()
}
