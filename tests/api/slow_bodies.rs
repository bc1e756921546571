//! FreJun's URLs are unauthenticated apart from their `key`: a request's key is checked before
//! its body is read, and a body that trickles in is cut off.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// Sends the request line and headers of a POST with a 64-byte body, then the body one byte
/// every 200 ms; answers the status line and how long it took to come.
async fn trickle(app: &TestApp, path_and_query: &str) -> (String, Duration) {
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 64\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let began = Instant::now();
    let (mut reader, mut writer) = socket.into_split();
    let writing = tokio::spawn(async move {
        for _ in 0..64 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = vec![0; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read(&mut answer))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let took = began.elapsed();
    writing.abort();
    let text = String::from_utf8_lossy(&answer[..read]).into_owned();
    (text.lines().next().unwrap_or_default().to_owned(), took)
}

#[tokio::test]
async fn a_wrong_key_is_refused_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    for path in ["/api/frejun/flow?key=nope", "/api/frejun/webhook?key=nope"] {
        let (status, took) = trickle(&app, path).await;
        assert!(status.contains(" 401 "), "{path}: {status}");
        assert!(
            took < Duration::from_secs(5),
            "{path}: answered after {took:?}"
        );
    }
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_read_deadline() {
    let app = TestApp::spawn_with(|settings| settings.server.body_read_timeout_ms = 1_000).await;
    let tenant = app.calling_tenant("Slow", "+14155550450", 5).await;
    for path in ["/api/frejun/flow", "/api/frejun/webhook"] {
        let (status, took) = trickle(&app, &format!("{path}?key={}", tenant.key)).await;
        assert!(status.contains(" 408 "), "{path}: {status}");
        assert!(
            took < Duration::from_secs(8),
            "{path}: answered after {took:?}"
        );
    }
}
