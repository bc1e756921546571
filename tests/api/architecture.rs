//! The module structure, checked by reading the sources (no database needed).
//!
//! - The dependency rule of ARCHITECTURE.md: each top-level module of `src/` names only the
//!   modules it may use, and the rule itself has no cycle.
//! - `domain/` and `audio/` import nothing above them.
//! - No `http/` handler file imports another handler file: what handlers share lives in the
//!   non-handler modules (`error`, `extract`, `views`, `auth`, `envelope`).
//!
//! Test code (files named `tests.rs`, the crate's property tests in `src/fuzz_tests.rs`, and the
//! trailing `#[cfg(test)] mod tests { … }` block of a file) is not part of the structure and is
//! skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// ARCHITECTURE.md's dependency rule: the crate modules each top-level module may name. A test
/// below checks that ARCHITECTURE.md's table says the same.
const RULE: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("audio", &[]),
    ("auth", &["domain"]),
    ("crypto", &["domain"]),
    ("frejun", &["domain"]),
    ("providers", &["audio", "domain", "telemetry"]),
    ("outbound", &["domain"]),
    ("settings", &["crypto", "domain", "outbound"]),
    ("telemetry", &["domain", "settings"]),
    (
        "storage",
        &["auth", "crypto", "domain", "settings", "telemetry"],
    ),
    ("local_mongodb", &["storage"]),
    (
        "shared",
        &[
            "crypto", "domain", "frejun", "outbound", "settings", "storage",
        ],
    ),
    (
        "calls",
        &[
            "auth",
            "crypto",
            "domain",
            "frejun",
            "outbound",
            "providers",
            "settings",
            "shared",
            "storage",
            "telemetry",
        ],
    ),
    (
        "bridge",
        &[
            "audio",
            "calls",
            "crypto",
            "domain",
            "frejun",
            "outbound",
            "providers",
            "settings",
            "shared",
            "storage",
            "telemetry",
        ],
    ),
    (
        "http",
        &[
            "auth",
            "bridge",
            "calls",
            "crypto",
            "domain",
            "frejun",
            "outbound",
            "providers",
            "settings",
            "shared",
            "storage",
            "telemetry",
        ],
    ),
    (
        "startup",
        &[
            "bridge",
            "calls",
            "http",
            "settings",
            "shared",
            "storage",
            "telemetry",
        ],
    ),
    (
        "sim",
        &["audio", "domain", "frejun", "outbound", "providers"],
    ),
    (
        "commands",
        &[
            "audio",
            "domain",
            "local_mongodb",
            "settings",
            "sim",
            "startup",
            "storage",
            "telemetry",
        ],
    ),
];

/// Files in `src/http/` that hold route handlers (each registers its routes with `routes`).
fn handler_modules(http: &Path) -> BTreeSet<String> {
    rust_files(http)
        .into_iter()
        .filter(|path| path.parent() == Some(http))
        .filter(|path| production_code(path).contains("fn routes("))
        .map(|path| module_name(&path))
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("source directory is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn module_name(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// The file without its test code and without comment lines.
fn production_code(path: &Path) -> String {
    if path.file_name().is_some_and(|name| name == "tests.rs") {
        return String::new();
    }
    let text = fs::read_to_string(path).expect("source file is readable");
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(start) => &text[..start],
        None => &text[..],
    };
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after every `prefix` in `code`, including each name of a group
/// (`prefix{a, b::c}` gives `a` and `b`).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let identifier = |text: &str| -> String {
        text.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (index, _) in code.match_indices(prefix) {
        let rest = &code[index + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                names.extend(group.split(',').map(identifier));
            }
            None => {
                names.insert(identifier(rest));
            }
        }
    }
    names.remove("");
    names
}

/// Every `crate::name` the code refers to, including `use crate::{a, b::c}`.
fn crate_modules_named(code: &str) -> BTreeSet<String> {
    names_after(code, "crate::")
}

/// Sibling modules of `src/http/` a file names through `super::x`, `super::{x, …}` or
/// `crate::http::x`.
fn http_siblings_named(code: &str) -> BTreeSet<String> {
    let mut names = names_after(code, "super::");
    names.extend(names_after(code, "crate::http::"));
    names
}

/// The top-level module a file under `src/` belongs to.
fn top_module(path: &Path) -> String {
    let relative = path.strip_prefix(src()).expect("under src/");
    let first = relative.components().next().expect("a component");
    let first = first.as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn every_module_uses_only_what_the_dependency_rule_allows() {
    let rule: BTreeMap<&str, BTreeSet<&str>> = RULE
        .iter()
        .map(|(module, allowed)| (*module, allowed.iter().copied().collect()))
        .collect();
    let mut violations = Vec::new();
    for path in rust_files(&src()) {
        let module = top_module(&path);
        if module == "main" || module == "lib" || module == "fuzz_tests" {
            continue;
        }
        let Some(allowed) = rule.get(module.as_str()) else {
            violations.push(format!("{module} is not in the rule ({})", path.display()));
            continue;
        };
        for named in crate_modules_named(&production_code(&path)) {
            if named != module && !allowed.contains(named.as_str()) {
                violations.push(format!(
                    "{} names crate::{named}, which {module} may not use",
                    path.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The rows of ARCHITECTURE.md's "Dependency rule" table, as (module, allowed) pairs.
fn documented_rule() -> BTreeMap<String, BTreeSet<String>> {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is readable");
    let section = text
        .split("## Dependency rule")
        .nth(1)
        .expect("ARCHITECTURE.md has a Dependency rule section");
    let names = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|name| name.trim().trim_matches('`').to_owned())
            .filter(|name| !name.is_empty() && name != "nothing")
            .collect()
    };
    let mut rule = BTreeMap::new();
    for line in section.lines().skip_while(|line| !line.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells[1] == "module" || cells[1].starts_with("---") {
            continue;
        }
        for module in names(cells[1]) {
            rule.insert(module, names(cells[2]).into_iter().collect());
        }
    }
    rule
}

#[test]
fn architecture_md_states_the_same_rule() {
    let code: BTreeMap<String, BTreeSet<String>> = RULE
        .iter()
        .map(|(module, allowed)| {
            (
                module.to_string(),
                allowed.iter().map(|name| name.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(documented_rule(), code);
}

#[test]
fn the_dependency_rule_has_no_cycle() {
    // Repeatedly remove modules whose allowed dependencies are all removed; a cycle is left over.
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = RULE
        .iter()
        .map(|(module, allowed)| (*module, allowed.iter().copied().collect()))
        .collect();
    loop {
        let leaves: Vec<&str> = remaining
            .iter()
            .filter(|(_, allowed)| allowed.iter().all(|dep| !remaining.contains_key(dep)))
            .map(|(module, _)| *module)
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            remaining.remove(leaf);
        }
    }
    assert!(remaining.is_empty(), "cycle among {:?}", remaining.keys());
}

#[test]
fn domain_and_audio_import_nothing_above_them() {
    for layer in ["domain", "audio"] {
        for path in rust_files(&src().join(layer)) {
            let code = production_code(&path);
            let above: Vec<String> = crate_modules_named(&code)
                .into_iter()
                .filter(|named| named != layer)
                .collect();
            assert!(
                above.is_empty(),
                "{} imports {above:?}, above {layer}/",
                path.display()
            );
            assert!(
                !code.contains("mongodb::"),
                "{} uses the MongoDB driver",
                path.display()
            );
        }
    }
}

#[test]
fn no_http_handler_file_imports_another() {
    let http = src().join("http");
    let handlers = handler_modules(&http);
    assert!(
        handlers.len() >= 8,
        "expected the handler files, found {handlers:?}"
    );
    let mut violations = Vec::new();
    for handler in &handlers {
        let path = http.join(format!("{handler}.rs"));
        for named in http_siblings_named(&production_code(&path)) {
            if &named != handler && handlers.contains(&named) {
                violations.push(format!("http/{handler}.rs imports http/{named}.rs"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_imports_in_every_form() {
    let code = "use crate::{audio, domain::call::CallStatus};\nlet x = crate::storage::X;";
    let named = crate_modules_named(code);
    assert_eq!(
        named,
        ["audio", "domain", "storage"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let code = "use super::{admin, error::ApiError};\nuse crate::http::calls::X;";
    let named = http_siblings_named(code);
    for expected in ["admin", "error", "calls"] {
        assert!(named.contains(expected), "{expected} in {named:?}");
    }
}

#[test]
fn unsafe_code_appears_only_in_the_resampler_kernel() {
    // `unsafe_code` is denied crate-wide (Cargo.toml); the one allowed block calls the AVX2
    // build of the resampler's loop after checking the processor. Anything else is a new
    // exception and needs the same scrutiny.
    let allowed = src().join("audio").join("resample").join("kernel.rs");
    let mut found = Vec::new();
    for path in rust_files(&src()) {
        let code = fs::read_to_string(&path).expect("source file is readable");
        let uses_unsafe = code.lines().any(|line| {
            let line = line.trim_start();
            !line.starts_with("//") && (line.contains("unsafe {") || line.contains("unsafe fn"))
        });
        if uses_unsafe {
            found.push(path);
        }
    }
    assert_eq!(found, vec![allowed]);
}
