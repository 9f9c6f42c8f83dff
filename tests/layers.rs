//! The layer order of the library (see the README's "Inside the library"), held as data: every
//! `crate::` path in `src/` must point to a module of the same or a lower layer, and a loss
//! family uses no other family's code (shared drivers live in `exec`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module path prefixes and their layers (the longest matching prefix wins).
const LAYERS: &[(&str, u8)] = &[
    // L0 core types: errors, texts, tensor views, parameters, specs, reductions, calls.
    ("error", 0),
    ("bail", 0),
    ("custom_gpu", 2),
    ("err", 0),
    ("text", 0),
    ("device", 0),
    ("tensor", 0),
    ("params", 0),
    ("spec", 0),
    ("reduction", 0),
    ("compute", 0),
    ("cabi", 0),
    ("version", 0),
    ("rng", 0),
    ("kernel_names", 0),
    // L1 engines: thread pool and SIMD kernels, the wgpu device, buffers, pipelines, launch.
    ("backend", 1),
    // L2 drivers shared by every family: targets, weights, row-wise / per-sample / pairs /
    // batch executors on both backends, loss definitions and kernel declarations.
    ("exec", 2),
    // L3 the losses, one file each.
    ("losses", 3),
    // L4 the registry and the plugin adapter (a plugin descriptor as a loss definition).
    ("registry", 4),
    ("plugin::adapter", 4),
    ("plugin::abi", 4),
    // L5 the safe Rust API, the plugin host, test helpers.
    ("context", 5),
    ("plugin", 5),
    ("testing", 5),
    // L6 the C ABI.
    ("ffi", 6),
];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(p, _)| module == *p || module.starts_with(&format!("{p}::")))
        .max_by_key(|(p, _)| p.len())
        .map(|&(_, l)| l)
}

/// `src/a/b.rs` -> `a::b`, `src/a/mod.rs` -> `a`; None for the crate root and binaries.
fn module_of(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.first().map(String::as_str) {
        None | Some("lib") | Some("bin") => return None,
        _ => {}
    }
    let mut parts = parts;
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    Some(parts.join("::"))
}

/// The `crate::...` module paths a source text names outside comments, with line numbers.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        // Unit-test modules (at the end of a file) may use the whole crate.
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = match code.find("//") {
            Some(k) if !code[..k].contains('"') => &code[..k],
            _ => code,
        };
        let mut rest = code;
        while let Some(k) = rest.find("crate::") {
            let before = &rest[..k];
            let after = &rest[k + "crate::".len()..];
            rest = after;
            // `$crate::` in macros is the same path; `losskit_crate::` is not ours.
            if before
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let path: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segs: Vec<&str> = path
                .split("::")
                .filter(|s| !s.is_empty())
                .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
                .collect();
            if segs.is_empty() && after.starts_with('{') {
                // `crate::{a, b::c}`: each item.
                let inner = after[1..].split('}').next().unwrap_or("");
                for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    out.push((n + 1, item.to_string()));
                }
            } else if segs.is_empty() {
                // A crate-root re-export such as `crate::Tensor`.
                out.push((n + 1, after.chars().take(24).collect()));
            } else {
                out.push((n + 1, segs.join("::")));
            }
        }
    }
    out
}

fn family_of(module: &str) -> Option<&str> {
    let mut it = module.split("::");
    (it.next() == Some("losses")).then(|| it.next()).flatten()
}

/// Every violation in the sources under `root`: upward imports, imports between families,
/// paths through the crate root, modules missing from the table.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        let Some(from) = module_of(rel) else { continue };
        let Some(from_layer) = layer_of(&from) else {
            bad.push(format!(
                "{}: module `{from}` has no layer in tests/layers.rs",
                rel.display()
            ));
            continue;
        };
        for (line, to) in crate_paths(text) {
            let Some(to_layer) = layer_of(&to) else {
                bad.push(format!(
                    "{}:{line}: `crate::{to}` is not a module of the layer table (name the module, not a crate-root re-export)",
                    rel.display()
                ));
                continue;
            };
            if to_layer > from_layer {
                bad.push(format!(
                    "{}:{line}: `{from}` (layer {from_layer}) uses `crate::{to}` (layer {to_layer})",
                    rel.display()
                ));
            }
            if let (Some(a), Some(b)) = (family_of(&from), family_of(&to)) {
                if a != b {
                    bad.push(format!(
                        "{}:{line}: family `{a}` uses family `{b}` (`crate::{to}`); shared code belongs in exec",
                        rel.display()
                    ));
                }
            }
        }
    }
    bad
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            sources(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("read source");
            out.push((p.strip_prefix(root).expect("under src").to_path_buf(), text));
        }
    }
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 80, "found only {} source files", files.len());
    let bad = violations(&files);
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_layer_map_covers_the_top_level_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("lib.rs");
    let mods: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(mods.len() >= 10);
    let by_layer: BTreeMap<u8, Vec<&str>> = mods.iter().fold(BTreeMap::new(), |mut m, md| {
        let l = layer_of(md).unwrap_or_else(|| panic!("module `{md}` has no layer"));
        m.entry(l).or_default().push(md);
        m
    });
    assert_eq!(
        by_layer.keys().copied().collect::<Vec<_>>(),
        (0..=6).collect::<Vec<_>>()
    );
}

#[test]
fn the_check_catches_what_it_should() {
    let f = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let files = vec![
        f(
            "backend/x.rs",
            "use crate::losses::classification::check_weights;\n",
        ),
        f("exec/y.rs", "    let a = crate::registry::builtins();\n"),
        f(
            "losses/rl/z.rs",
            "use crate::losses::preference::run_rows;\n",
        ),
        f("tensor.rs", "use crate::Tensor;\nuse crate::{bail, err};\n"),
        f(
            "params.rs",
            "use crate::{bail, context::Loss};\n#[cfg(test)]\nuse crate::ffi::x;\n",
        ),
        f(
            "spec.rs",
            "// crate::ffi::lk_tensor in a comment is fine\nuse crate::error::Result;\n",
        ),
        f(
            "losses/rl/w.rs",
            "use crate::exec::rows::run_rows; // crate::ffi in a comment\n",
        ),
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 5, "{bad:#?}");
    assert!(bad[0].contains("backend/x.rs:1") && bad[0].contains("layer 3"));
    assert!(bad[1].contains("exec/y.rs:1") && bad[1].contains("layer 4"));
    assert!(bad[2].contains("family `rl` uses family `preference`"));
    assert!(bad[3].contains("crate-root re-export"));
    assert!(bad[4].contains("params.rs:1") && bad[4].contains("crate::context::Loss"));
}
