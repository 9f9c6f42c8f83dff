//! Shared helpers of the test binaries: tolerances, comparison with a report, and the
//! count of what a suite checked and skipped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod cce;

/// Loss-value tolerance of f32 results against an f64 reference (absolute and relative).
pub const LOSS_TOL: f64 = 2e-5;
/// Gradient tolerance of f32 results against an f64 reference.
pub const GRAD_TOL: f64 = 2e-5;
/// Tolerance of the finite-difference check (f32 loss values, central differences).
pub const FD_TOL: f64 = 2e-3;

/// `|a - b| <= tol * (1 + |b|)` for every element, with a message naming the worst one.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} != {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f64);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / (1.0 + w.abs());
        if err.is_nan() || err > worst.1 {
            worst = (k, if err.is_nan() { f64::INFINITY } else { err });
        }
    }
    assert!(
        worst.1 <= tol,
        "{what}: element {} is {} but the reference is {} (scaled error {:.3e} > {tol:.1e})",
        worst.0,
        got[worst.0],
        want[worst.0],
        worst.1
    );
}

/// What a suite checked and what it skipped, by reason. [`Tally::finish`] prints the counts
/// and fails when fewer cases than the stated minimum were checked, so a suite that skips
/// everything (or a registry that lost its losses) does not pass silently.
#[derive(Debug, Default)]
pub struct Tally {
    what: String,
    checked: usize,
    skipped: BTreeMap<String, usize>,
}

impl Tally {
    /// An empty tally; `what` names the suite and its unit, e.g. `gradients (cases)`.
    pub fn new(what: &str) -> Self {
        Tally {
            what: what.to_string(),
            ..Tally::default()
        }
    }
    /// Count `n` checked cases.
    pub fn checked(&mut self, n: usize) {
        self.checked += n;
    }
    /// Count `n` cases skipped for `reason`.
    pub fn skip(&mut self, reason: &str, n: usize) {
        if n > 0 {
            *self.skipped.entry(reason.to_string()).or_default() += n;
        }
    }
    /// The number of checked cases so far.
    pub fn count(&self) -> usize {
        self.checked
    }
    /// Print the counts and assert that at least `min` cases were checked.
    pub fn finish(&self, min: usize) {
        let skips: Vec<String> = self
            .skipped
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        println!(
            "{}: {} checked (minimum {min}); skipped: {}",
            self.what,
            self.checked,
            if skips.is_empty() {
                "none".to_string()
            } else {
                skips.join(", ")
            }
        );
        assert!(
            self.checked >= min,
            "{}: only {} checked, fewer than the minimum {min} (skipped: {skips:?})",
            self.what,
            self.checked
        );
    }
}

/// Path of a golden file under tests/golden/.
pub fn golden_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel)
}

/// The directory holding an up-to-date `liblosskit.so` (`target/<profile>/`), with the
/// SONAME link beside it. `cargo test` builds only the rlib, so this runs `cargo build --lib`
/// once per test binary (same profile) to refresh the cdylib that C programs link to.
pub fn cdylib_dir() -> PathBuf {
    use std::sync::OnceLock;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "--lib", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cannot run cargo");
        assert!(
            out.status.success(),
            "cargo build --lib failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        assert!(
            dir.join("liblosskit.so").exists(),
            "no liblosskit.so in {}",
            dir.display()
        );
        let soname = dir.join(format!("liblosskit.so.{}", env!("CARGO_PKG_VERSION")));
        if std::fs::read_link(&soname).is_err() {
            let _ = std::fs::remove_file(&soname);
            let _ = std::os::unix::fs::symlink("liblosskit.so", &soname);
        }
        dir
    })
    .clone()
}
