//! The builtins' WGSL without a GPU: every per-sample kernel, assembled as the host assembles
//! it (contract prelude, the constants generated from the loss's spec, the preludes, the
//! host constants, the kernel), parses and validates with naga and binds as the contract
//! says; no builtin kernel names a parameter, an input or a shape letter by its position.
#![cfg(feature = "wgpu")]

use std::path::{Path, PathBuf};

use losskit::backend::wgpu::per_sample::{Builder, LazyKernel};
use losskit::backend::wgpu::{PRELUDE, PerSampleWgsl};
use losskit::losses::classification::SAMPLE_PRELUDE;
use losskit::losses::preference::FAMILY_WGSL;
use losskit::losses::rl::gpu::FAMILY as RL_FAMILY;
use losskit::registry::builtin;

const CLASSIFICATION: &[&str] = &[PRELUDE, SAMPLE_PRELUDE];
const PREFERENCE: &[&str] = &[PRELUDE, FAMILY_WGSL];
const RL: &[&str] = &[PRELUDE, RL_FAMILY];
const STEER: &[&str] = &[
    PRELUDE,
    RL_FAMILY,
    include_str!("../src/losses/rl/steer_omega.wgsl"),
];

/// One builtin per-sample kernel: loss id, kernel file (under `src/losses/`), the preludes
/// and the kernel as the loss declares them.
struct Entry {
    id: &'static str,
    file: &'static str,
    kernel: LazyKernel,
}

macro_rules! entry {
    ($id:literal, $file:literal, $preludes:expr) => {
        entry!($id, $file, $preludes, PerSampleWgsl::new, &[], @after [])
    };
    ($id:literal, $file:literal, $preludes:expr, @after [$($before:literal),*]) => {
        entry!($id, $file, $preludes, PerSampleWgsl::new, &[], @after [$($before),*])
    };
    ($id:literal, $file:literal, $preludes:expr, $build:expr, $consts:expr) => {
        entry!($id, $file, $preludes, $build, $consts, @after [])
    };
    // The kernel source: the files `before` and then `file` concatenated, as the loss does.
    ($id:literal, $file:literal, $preludes:expr, $build:expr, $consts:expr,
     @after [$($before:literal),*]) => {
        Entry {
            id: $id,
            file: $file,
            kernel: LazyKernel::with_host_consts(
                $preludes,
                concat!(
                    $(include_str!(concat!("../src/losses/", $before)),)*
                    include_str!(concat!("../src/losses/", $file))
                ),
                $build,
                $consts,
            ),
        }
    };
}

fn leading(spec: &losskit::LossSpec, src: &str) -> losskit::Result<PerSampleWgsl> {
    PerSampleWgsl::with_leading_axis(spec, src)
}

fn entries() -> Vec<Entry> {
    use losskit::losses::preference::rso_accept;
    use losskit::losses::rl::{grpo, ppo_clip, steer};
    let grpo_builder: Builder =
        |spec, src| Ok(PerSampleWgsl::new(spec, src)?.with_whole_inputs(&[2]));
    vec![
        entry!(
            "aldr_kl",
            "classification/aldr_kl.wgsl",
            CLASSIFICATION,
            @after ["classification/ldr.wgsl"]
        ),
        entry!(
            "categorical_value",
            "classification/categorical_value.wgsl",
            CLASSIFICATION
        ),
        entry!("dco", "classification/dco.wgsl", CLASSIFICATION),
        entry!("kd_kl", "classification/kd_kl.wgsl", &[PRELUDE]),
        entry!(
            "ldr_kl",
            "classification/ldr_kl.wgsl",
            CLASSIFICATION,
            @after ["classification/ldr.wgsl"]
        ),
        entry!(
            "noisefit_hybrid",
            "classification/noisefit_hybrid.wgsl",
            CLASSIFICATION
        ),
        entry!(
            "reward_shaped_ntp",
            "classification/reward_shaped_ntp.wgsl",
            CLASSIFICATION
        ),
        entry!(
            "smooth_adv_comp_sum",
            "classification/smooth_adv_comp_sum.wgsl",
            CLASSIFICATION,
            @after ["classification/comp_sum.wgsl"]
        ),
        entry!(
            "spherical_z_loss",
            "classification/spherical_z_loss.wgsl",
            CLASSIFICATION
        ),
        entry!(
            "symmetric_ce",
            "classification/symmetric_ce.wgsl",
            CLASSIFICATION
        ),
        entry!("cpo", "preference/cpo.wgsl", PREFERENCE),
        entry!("dpa_semantic", "preference/dpa_semantic.wgsl", PREFERENCE),
        entry!("dpo", "preference/dpo.wgsl", PREFERENCE),
        entry!("hypo", "preference/hypo.wgsl", PREFERENCE),
        entry!("inpo", "preference/inpo.wgsl", PREFERENCE),
        entry!("kto", "preference/kto.wgsl", PREFERENCE),
        entry!("mapl", "preference/mapl.wgsl", PREFERENCE),
        entry!("orpo", "preference/orpo.wgsl", PREFERENCE),
        entry!("osp_spce", "preference/osp_spce.wgsl", PREFERENCE),
        entry!("rpo", "preference/rpo.wgsl", PREFERENCE),
        entry!(
            "rso_accept",
            "preference/rso_accept.wgsl",
            PREFERENCE,
            PerSampleWgsl::new,
            rso_accept::GPU_HOST_CONSTS
        ),
        entry!("seppo", "preference/seppo.wgsl", PREFERENCE),
        entry!("simpo", "preference/simpo.wgsl", PREFERENCE),
        entry!(
            "solireward_btwt",
            "preference/solireward_btwt.wgsl",
            PREFERENCE
        ),
        entry!(
            "sparsepo",
            "preference/sparsepo.wgsl",
            &[PRELUDE],
            leading,
            &[]
        ),
        entry!("sparsepo_mask", "preference/sparsepo_mask.wgsl", &[PRELUDE]),
        entry!("spo_degree", "preference/spo_degree.wgsl", PREFERENCE),
        entry!("yojo_nway", "preference/yojo_nway.wgsl", PREFERENCE),
        entry!(
            "grpo",
            "rl/grpo.wgsl",
            RL,
            grpo_builder,
            grpo::GPU_HOST_CONSTS
        ),
        entry!(
            "ppo_clip",
            "rl/ppo_clip.wgsl",
            RL,
            PerSampleWgsl::new,
            ppo_clip::GPU_HOST_CONSTS
        ),
        entry!(
            "steer",
            "rl/steer.wgsl",
            STEER,
            PerSampleWgsl::new,
            steer::GPU_HOST_CONSTS
        ),
    ]
}

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable source directory") {
        let p = e.expect("directory entry").path();
        if p.is_dir() {
            wgsl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "wgsl") {
            out.push(p);
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The per-sample kernels as the builtins declare them (`LossDef::gpu`), built by the
/// executor itself: every one parses, validates and binds against its spec.
#[test]
fn every_declared_per_sample_kernel_builds() {
    use losskit::exec::kernel::GpuKernel;
    let mut built = 0;
    for def in losskit::registry::builtins() {
        if let GpuKernel::Sample(k) = &def.gpu {
            let b = losskit::exec::gpu::sample::built(&def.spec, k)
                .unwrap_or_else(|e| panic!("{}: {}", def.spec.id, e.msg));
            assert!(b.source.contains("fn lk_main"), "{}", def.spec.id);
            built += 1;
        }
    }
    assert!(built >= 25, "only {built} declared per-sample kernels");
}

#[test]
fn every_per_sample_kernel_validates_with_its_generated_names() {
    let list = entries();
    for e in &list {
        let def = builtin(e.id).unwrap_or_else(|| panic!("{} is not a builtin", e.id));
        assert!(def.has_gpu(), "{}: listed but has no GPU path", e.id);
        let k = e
            .kernel
            .get(&def.spec)
            .unwrap_or_else(|err| panic!("{} ({}): {}", e.id, e.file, err.msg));
        assert!(k.source.contains("fn lk_main"), "{}", e.id);
    }
    // Every contract kernel of the crate is in the list.
    let mut files = Vec::new();
    wgsl_files(&src_dir().join("losses"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable WGSL");
        if !text.contains("fn lk_main") {
            continue;
        }
        let rel = f
            .strip_prefix(src_dir().join("losses"))
            .expect("under src/losses")
            .to_string_lossy()
            .replace('\\', "/");
        assert!(
            list.iter().any(|e| e.file == rel),
            "{rel} is a per-sample kernel missing from this test's list"
        );
    }
}

/// Positions where a name is due: an accessor (`lk_param`, `lk_present`, `lk_dim`, or any
/// function named `*_param`, `*_present`, `*_dim` such as the old `pf_param`) called with a
/// literal, or the contract's fields read directly.
fn positional_uses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut hit = ["lk.params", "lk.present", "lk.dims"]
            .iter()
            .any(|f| code.contains(f));
        for (at, _) in code.match_indices('(') {
            let ident: String = code[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let accessor = ["param", "present", "dim"]
                .iter()
                .any(|a| ident == format!("lk_{a}") || ident.ends_with(&format!("_{a}")));
            let literal = code[at + 1..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit());
            hit |= accessor && literal;
        }
        if hit {
            found.push(format!("line {}: {}", n + 1, line.trim()));
        }
    }
    found
}

#[test]
fn no_builtin_kernel_reads_a_parameter_by_position() {
    let mut files = Vec::new();
    wgsl_files(&src_dir(), &mut files);
    assert!(files.len() > 30, "found only {} WGSL files", files.len());
    let mut bad = Vec::new();
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable WGSL");
        // The row-wise snippets read the values their loss's host code lists in
        // `RowCall.params` (not the spec), through the skeleton's own `lk_param`.
        if text.contains("fn lk_row_loss") {
            continue;
        }
        checked += 1;
        for u in positional_uses(&text) {
            bad.push(format!("{}: {u}", f.display()));
        }
    }
    assert!(checked > 30, "checked only {checked} files");
    assert!(
        bad.is_empty(),
        "name parameters, inputs and letters with the generated LK_P_/LK_IN_/LK_DIM_/LK_C_ constants:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_positional_check_sees_the_old_style() {
    let old = "let hinge = pf_param(3u) == 1.0;\nlet b = lk_param(3u);\nif (lk_present( 2u)) {}\n\
               let t = lk.dims[0].y;\nlet ok = lk_param(LK_P_BETA); // lk_param(0u)\n";
    let found = positional_uses(old);
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found[3].starts_with("line 4"), "{found:?}");
}
