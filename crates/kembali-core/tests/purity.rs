//! Architecture invariant: kembali-core is pure. It depends on no runtime, database, web or
//! randomness crate, and reads no clock: every instant comes in as an argument.

use std::path::{Path, PathBuf};

const ALLOWED_DEPENDENCIES: &[&str] = &[
    "serde",
    "thiserror",
    "chrono",
    "chrono-tz",
    "sha2",
    "statrs",
    "foldhash",
    "compact_str",
];

#[test]
fn the_core_depends_only_on_pure_crates() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.starts_with('#'))
        .collect();
    assert!(
        !deps.is_empty(),
        "the manifest parsed to no dependencies at all"
    );
    for d in &deps {
        assert!(
            ALLOWED_DEPENDENCIES.contains(d),
            "kembali-core must stay pure but depends on {d}"
        );
    }
}

#[test]
fn the_core_never_reads_the_clock_or_draws_randomness() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for forbidden in [
            "Utc::now",
            "Local::now",
            "SystemTime",
            "Instant::now",
            "rand::",
            "std::fs",
            "std::net",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                path.display()
            );
        }
    }
    assert!(
        files.len() >= 10,
        "expected the core's modules, found {}",
        files.len()
    );
    assert!(
        files.iter().any(|f| f.ends_with("analytics/bgnbd.rs")),
        "the walk must reach modules in subdirectories"
    );
}

/// Every `.rs` file under `dir`, subdirectories included.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
