//! Architecture invariant: kembali-core is pure. It depends on no runtime, database, web or
//! randomness crate, and reads no clock: every instant comes in as an argument.

use std::path::Path;

const ALLOWED_DEPENDENCIES: &[&str] = &["serde", "thiserror", "chrono"];

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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
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
        checked += 1;
    }
    assert!(checked >= 5, "expected the core's modules, found {checked}");
}
