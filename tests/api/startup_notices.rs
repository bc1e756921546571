//! What the binary tells the operator as it starts, run for real (`voxbridge migrate`, which
//! loads settings, starts logging and exits): the development admin token is printed once,
//! when it is generated, and never when configured or read back; with JSON logs every line
//! on the log stream is JSON and none carries the token.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{TestDatabase, mongodb_uri};

/// Runs `voxbridge migrate` with only the given settings in its environment.
fn migrate(state_dir: &Path, database: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxbridge"));
    command
        .arg("migrate")
        .env_clear()
        .current_dir(state_dir)
        .env("VOXBRIDGE__DEV__STATE_DIR", state_dir)
        .env("VOXBRIDGE__MONGODB__URI", mongodb_uri())
        .env("VOXBRIDGE__MONGODB__DATABASE", database);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("voxbridge migrate ran")
}

fn generated_admin_token(state_dir: &Path) -> String {
    let text = std::fs::read_to_string(state_dir.join("dev-secrets.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table["security"]["admin_token"]
        .as_str()
        .expect("an admin token")
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_development_admin_token_is_printed_once_when_generated() {
    let database = TestDatabase::new().await;
    let name = &database.settings.mongodb.database;
    let dir = tempfile::tempdir().unwrap();

    let first = migrate(dir.path(), name, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let token = generated_admin_token(dir.path());
    assert_eq!(
        stderr(&first).matches(&token).count(),
        1,
        "printed once when generated:\n{}",
        stderr(&first)
    );

    let second = migrate(dir.path(), name, &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains(&token),
        "not printed when read back from the file:\n{}",
        stderr(&second)
    );

    let configured = "a-configured-admin-token-0123456789abcdef";
    let other_dir = tempfile::tempdir().unwrap();
    let third = migrate(
        other_dir.path(),
        name,
        &[("VOXBRIDGE__SECURITY__ADMIN_TOKEN", configured)],
    );
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(
        stderr(&third).contains("generated development secrets"),
        "the other secrets were generated:\n{}",
        stderr(&third)
    );
    assert!(
        !stderr(&third).contains(configured) && !stderr(&third).contains("admin token"),
        "a configured token is never printed:\n{}",
        stderr(&third)
    );
}

/// Every non-empty line of `text` as JSON; panics naming the first line that is not.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}\n{text}"))
        })
        .collect()
}

#[tokio::test]
async fn with_json_logs_the_log_stream_is_all_json_and_holds_no_token() {
    let database = TestDatabase::new().await;
    let name = &database.settings.mongodb.database;
    let dir = tempfile::tempdir().unwrap();
    let json = [("VOXBRIDGE__LOG__FORMAT", "json")];

    let started = migrate(dir.path(), name, &json);
    assert!(started.status.success(), "{}", stderr(&started));
    let token = generated_admin_token(dir.path());
    let lines = json_lines(&stderr(&started));
    assert!(!stderr(&started).contains(&token), "{}", stderr(&started));
    assert!(
        lines.iter().any(|line| line["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("generated development secrets"))),
        "the operator is told where the secrets are: {lines:?}"
    );

    // A setting that does not load, so logging is not configured yet: still JSON.
    let broken = migrate(
        dir.path(),
        name,
        &[
            ("VOXBRIDGE__LOG__FORMAT", "json"),
            ("VOXBRIDGE__SERVER__PORT", "not-a-port"),
        ],
    );
    assert!(!broken.status.success());
    let lines = json_lines(&stderr(&broken));
    assert!(
        lines.iter().any(|line| line["level"] == "ERROR"
            && line["error"]
                .as_str()
                .is_some_and(|e| e.contains("server.port"))),
        "{lines:?}"
    );
}
