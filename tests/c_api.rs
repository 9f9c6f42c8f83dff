//! Compiles every C program in tests/c/ against include/losskit.h with
//! `-std=c99 -Wall -Wextra -Wpedantic -Werror`, links it to the built cdylib and runs it; also
//! compiles the header as C++17. `tests/c/smoke.c` is the README's C example, verbatim.
//! The compiler is `$CC` (default `cc`) and `$CXX` (default `c++`). With
//! `LOSSKIT_C_SANITIZE=1` the C programs are built with AddressSanitizer (leak checking on)
//! and UndefinedBehaviorSanitizer, as CI runs them once.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lib_dir() -> PathBuf {
    common::cdylib_dir()
}

fn out_dir() -> PathBuf {
    let d = lib_dir().join("c-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sanitize_flags() -> Vec<&'static str> {
    if std::env::var_os("LOSSKIT_C_SANITIZE").is_some_and(|v| v == "1") {
        vec![
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer",
        ]
    } else {
        Vec::new()
    }
}

fn compile_and_run(name: &str, extra: &[&str]) -> String {
    let src = root().join("tests/c").join(format!("{name}.c"));
    let exe = out_dir().join(if sanitize_flags().is_empty() {
        name.to_string()
    } else {
        format!("{name}-asan")
    });
    let lib = lib_dir();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O1",
        ])
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-llosskit")
        .args(extra)
        .args(sanitize_flags())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{name}.c does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{name} failed ({:?}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[test]
fn smoke_c_is_the_readme_example_and_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let smoke = std::fs::read_to_string(root().join("tests/c/smoke.c")).unwrap();
    assert!(
        readme.contains(&format!("```c\n{smoke}```")),
        "the README's C example must be tests/c/smoke.c verbatim"
    );
    let out = compile_and_run("smoke", &[]);
    assert!(out.starts_with("loss = "), "{out}");
}

#[test]
fn version_macros_match_the_library() {
    compile_and_run("version", &[]);
}

#[test]
fn bad_inputs_get_clear_statuses_in_c() {
    let out = compile_and_run("errors", &["-lm"]);
    assert!(out.contains("all bad inputs refused"), "{out}");
}

#[test]
fn one_loss_from_eight_c_threads() {
    compile_and_run("threads", &["-lpthread"]);
}

#[test]
fn introspection_from_c() {
    compile_and_run("introspect", &["-lm"]);
}

#[test]
fn parameters_from_c() {
    let out = compile_and_run("params", &[]);
    assert!(out.contains("checked together"), "{out}");
}

#[test]
fn header_compiles_as_cpp() {
    let dir = out_dir();
    let src = dir.join("header_check.cpp");
    std::fs::write(
        &src,
        "#include \"losskit.h\"\n#include \"losskit.h\"\nint main() { lk_tensor t{}; (void)t; return lk_version_number() == LK_VERSION_NUMBER ? 0 : 1; }\n",
    )
    .unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let out = Command::new(&cxx)
        .args([
            "-std=c++17",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(root().join("include"))
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cxx}: {e}"));
    assert!(
        out.status.success(),
        "header does not compile as C++:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
