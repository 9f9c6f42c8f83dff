//! Building the example and test plugins from a test binary (include with
//! `#[path = "plugins/support.rs"] mod plugin_support;`).
//!
//! - C plugins are compiled with `$CC` (default `cc`) as C99 with `-Wall -Wextra -Wpedantic
//!   -Werror`, against `include/` only (`losskit_plugin.h`), into `<target>/plugins/`.
//! - The Rust example is built with cargo, in the tests' profile, into its own target
//!   directory `<target>/example_rust` (building it into `<target>` itself would replace
//!   `deps/liblosskit.so` with the dependency's build without the plugin host, which cargo
//!   may then copy over the `liblosskit.so` the C tests link to). Each plugin is built once
//!   per test binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>` (the directory holding `debug/` or `release/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn out_dir() -> PathBuf {
    let d = target_dir().join("plugins");
    std::fs::create_dir_all(&d).expect("create <target>/plugins");
    d
}

/// Compile `src` (relative to the repository) into `<target>/plugins/<file>` with the
/// extra `defines`; cached per output name.
pub fn build_c(src: &str, file: &str, defines: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = map.get(file) {
        return p.clone();
    }
    let out = out_dir().join(file);
    // Write beside and rename, so a library another process has mapped is never rewritten.
    let tmp = out_dir().join(format!("{file}.{}.tmp", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let res = Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O2",
            "-shared",
            "-fPIC",
        ])
        .args(defines)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-o")
        .arg(&tmp)
        .arg(root().join(src))
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        res.status.success(),
        "{src} {defines:?} does not compile:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::rename(&tmp, &out).expect("rename the built plugin");
    map.insert(file.to_string(), out.clone());
    out
}

/// The C example: the asymmetric loss (`libasl.so`).
pub fn asl_plugin() -> PathBuf {
    build_c("plugins/example_c/asl.c", "libasl.so", &[])
}

/// The working toy plugin of the tests (`libtoy.so`).
pub fn toy_plugin() -> PathBuf {
    build_c("tests/plugins/toy.c", "libtoy.so", &[])
}

/// A faulty variant of the toy plugin, e.g. `fault("TOY_ABI_99")`.
pub fn fault(define: &str) -> PathBuf {
    let file = format!("libtoy_{}.so", define.to_lowercase());
    build_c("tests/plugins/toy.c", &file, &[&format!("-D{define}")])
}

/// The Rust example: log-cosh (`liblogcosh.so`), built with cargo once per test binary.
pub fn rust_plugin() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = root().join("plugins/example_rust");
        let mut cmd = Command::new(env!("CARGO"));
        let tdir = target_dir().join("example_rust");
        cmd.args(["build", "--quiet", "--lib", "--target-dir"])
            .arg(&tdir)
            .current_dir(&dir);
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            cmd.arg("--release");
            "release"
        };
        let out = cmd.output().expect("cannot run cargo");
        assert!(
            out.status.success(),
            "building plugins/example_rust failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let so = tdir.join(profile).join("liblogcosh.so");
        assert!(so.exists(), "no {}", so.display());
        // Copy it away from cargo's output, which a later build may replace.
        let dst = out_dir().join("liblogcosh.so");
        let tmp = out_dir().join(format!("liblogcosh.so.{}.tmp", std::process::id()));
        std::fs::copy(&so, &tmp).expect("copy liblogcosh.so");
        std::fs::rename(&tmp, &dst).expect("rename liblogcosh.so");
        dst
    })
    .clone()
}

/// A CPU context with both example plugins loaded.
pub fn context_with_examples() -> losskit::Context {
    let ctx = losskit::Context::cpu();
    losskit::plugin::load(&ctx, asl_plugin(), None).expect("load libasl.so");
    losskit::plugin::load(&ctx, rust_plugin(), None).expect("load liblogcosh.so");
    ctx
}
