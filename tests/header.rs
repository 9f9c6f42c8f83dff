//! The committed `include/losskit.h` must equal what the pinned cbindgen generates now, and
//! every `lk_*` function the header declares must be exported by the library.
//! Regenerate the committed header with `LOSSKIT_BLESS=1 cargo test --test header`.

mod common;

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let fresh = losskit::ffi::GENERATED_HEADER;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/losskit.h");
    if std::env::var_os("LOSSKIT_BLESS").is_some() {
        std::fs::write(&path, fresh).expect("write include/losskit.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/losskit.h is stale: regenerate it with `LOSSKIT_BLESS=1 cargo test --test header`"
    );
}

#[test]
fn header_parses_no_mangle_exports() {
    // The pinned cbindgen must understand `#[unsafe(no_mangle)]`: the exports are there.
    let h = losskit::ffi::GENERATED_HEADER;
    for f in [
        "lk_context_create",
        "lk_loss_create",
        "lk_loss_compute",
        "lk_last_error_message",
        "lk_status_str",
        "lk_version_number",
    ] {
        assert!(h.contains(&format!("{f}(")), "{f} missing from the header");
    }
}

#[test]
fn version_macros_match_cargo() {
    let h = losskit::ffi::GENERATED_HEADER;
    for (name, v) in [
        ("LK_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("LK_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("LK_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            h.contains(&format!("#define {name} {v}\n")),
            "{name} in the header differs from Cargo.toml ({v})"
        );
    }
}

#[test]
fn every_declared_function_is_exported_by_the_cdylib() {
    let h = losskit::ffi::GENERATED_HEADER;
    let declared: Vec<String> = h
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            if l.starts_with(' ') || l.starts_with('*') || l.starts_with('#') || l.starts_with("/")
            {
                return None;
            }
            let open = l.find("(")?;
            let head = &l[..open];
            let name = head.rsplit([' ', '*']).next()?;
            (name.starts_with("lk_") && !l.starts_with("typedef")).then(|| name.to_string())
        })
        .collect();
    assert!(
        declared.len() > 20,
        "parsed only {} declarations",
        declared.len()
    );
    let lib = common::cdylib_dir().join("liblosskit.so");
    let Ok(out) = std::process::Command::new("nm")
        .arg("-D")
        .arg("--defined-only")
        .arg(&lib)
        .output()
    else {
        eprintln!("skipped: nm not available");
        return;
    };
    if !out.status.success() {
        eprintln!("skipped: {} not built", lib.display());
        return;
    }
    let syms = String::from_utf8_lossy(&out.stdout);
    let exported: Vec<&str> = syms
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("lk_"))
        .collect();
    for d in &declared {
        assert!(
            exported.contains(&d.as_str()),
            "{d} is declared but not exported"
        );
    }
    for e in &exported {
        assert!(
            declared.iter().any(|d| d == e),
            "{e} is exported but not declared"
        );
    }
}
