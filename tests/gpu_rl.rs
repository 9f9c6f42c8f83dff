//! GPU (wgpu) tests of the RL losses (`ppo_clip`, `grpo`, `steer`) and of the preference
//! losses with their own row layouts (`sparsepo`, `sparsepo_mask`, `grad_entanglement`,
//! `aot`): every `loss_agg` mode on longer rows than the generic parity suite uses, `grpo`'s
//! groups and reward scalings, auxiliary outputs, `aot` on batches larger than a workgroup,
//! device buffers (including `sparsepo`'s `[2, B, T]` inputs, which exercise the per-sample
//! contract's leading-axis extension), forced row chunking (which splits `grpo`'s groups
//! across chunks and `steer`'s min/max pass), and the same validation errors as the CPU.
//!
//! Without an adapter every test passes after printing "skipped" unless
//! `LOSSKIT_REQUIRE_GPU=1`. Tolerance as the generic suite: `|gpu - cpu| <= 2e-5 + 2e-4·|cpu|`.

#![cfg(feature = "wgpu")]

use std::collections::BTreeMap;

use losskit::testing::{Case, OwnedData};
use losskit::{Compute, Context, DType, ErrorKind, Loss, ParamValue, Reduction, Tensor, TensorMut};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, dims, own_gpu_ctx};

fn configured(ctx: &Context, id: &str, set: &[(&str, ParamValue)]) -> Loss {
    let mut l = ctx.loss(id).unwrap();
    for (n, v) in set {
        l.set(n, *v).unwrap();
    }
    l
}

/// Run `case` on both contexts with every reduction (none only for per-sample losses), with
/// and without grad_output, and compare the loss and every gradient.
fn compare(g: &Context, id: &str, set: &[(&str, ParamValue)], case: &Case, what: &str) {
    let cpu = Context::cpu();
    let (lg, lc) = (configured(g, id, set), configured(&cpu, id, set));
    let spec = &lc.def().spec;
    let rows = case.rows(spec);
    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        if spec.batch_level && red == Reduction::None {
            continue;
        }
        for go in [None, Some(0.6f32)] {
            let gov: Option<Vec<f32>> = go.map(|s| match red {
                Reduction::None => (0..rows).map(|i| s + 0.1 * i as f32).collect(),
                _ => vec![s],
            });
            let w = format!("{id} {what} {set:?} {} go {}", red.name(), go.is_some());
            let oc = case.run(&lc, red, true, gov.as_deref()).unwrap();
            let og = case
                .run(&lg, red, true, gov.as_deref())
                .unwrap_or_else(|e| panic!("{w}: GPU failed: {e}"));
            close(&format!("{w}: loss"), &og.loss, &oc.loss);
            for (k, (a, b)) in og.grads.iter().zip(&oc.grads).enumerate() {
                if let (Some(a), Some(b)) = (a, b) {
                    close(&format!("{w}: grad {k}"), a, b);
                }
            }
        }
    }
}

fn case(l_ctx: &Context, id: &str, d: &BTreeMap<String, usize>, seed: u64, opt: bool) -> Case {
    Case::random(&l_ctx.loss(id).unwrap(), d, seed, opt)
}

#[test]
fn rl_losses_match_in_every_aggregation_mode_on_long_rows() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    for (id, n) in [("ppo_clip", 9usize), ("grpo", 12), ("steer", 9)] {
        for agg in 0..4i64 {
            for &t in &[1usize, 37, 300] {
                let mut set = vec![("loss_agg", ParamValue::Enum(agg as usize))];
                if agg == 3 {
                    set.push(("max_len", ParamValue::I64(if t == 37 { 50 } else { 0 })));
                }
                let c = case(&cpu, id, &dims(&[("N", n), ("T", t)]), 40 + t as u64, true);
                compare(&g, id, &set, &c, &format!("agg {agg} T={t}"));
            }
        }
    }
}

#[test]
fn grpo_groups_and_reward_scalings_match() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let n = 12usize;
    for gs in [1i64, 2, 3, 4, 6, 12] {
        for scale in 0..3usize {
            for (opt, beta) in [(true, 0.3), (false, 0.0)] {
                let set = [
                    ("group_size", ParamValue::I64(gs)),
                    ("scale_rewards", ParamValue::Enum(scale)),
                    ("beta", ParamValue::F64(beta)),
                ];
                let c = case(
                    &cpu,
                    "grpo",
                    &dims(&[("N", n), ("T", 7)]),
                    7 + gs as u64,
                    opt,
                );
                compare(
                    &g,
                    "grpo",
                    &set,
                    &c,
                    &format!("G={gs} scale {scale} opt {opt}"),
                );
            }
        }
    }
    // A group with equal rewards: std 0, advantages 0 (only the KL term is left).
    let mut c = case(&cpu, "grpo", &dims(&[("N", 8), ("T", 5)]), 3, true);
    if let Some(t) = c.inputs[2].as_mut() {
        if let OwnedData::F32(v) = &mut t.data {
            v[..4].fill(0.75);
        }
    }
    compare(
        &g,
        "grpo",
        &[("beta", ParamValue::F64(0.2))],
        &c,
        "equal rewards",
    );
}

#[test]
fn sparsepo_modes_and_masks_match() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    for (b, t) in [(5usize, 4usize), (37, 60), (2, 500)] {
        for (mode, omit_kl) in [(0usize, false), (0, true), (1, true)] {
            let mut c = case(
                &cpu,
                "sparsepo",
                &dims(&[("B", b), ("T", t)]),
                11 + b as u64,
                true,
            );
            if omit_kl {
                c.inputs[5] = None;
            }
            let set = [
                ("mask_mode", ParamValue::Enum(mode)),
                ("beta", ParamValue::F64(0.3)),
                ("l1_reward", ParamValue::F64(0.05)),
                ("l1_kl", ParamValue::F64(0.02)),
            ];
            compare(
                &g,
                "sparsepo",
                &set,
                &c,
                &format!("B={b} T={t} kl {}", !omit_kl),
            );
        }
    }
}

/// Run `id` with auxiliary output `aux` (rows x width) on a context; returns (loss, aux).
fn run_aux(
    ctx: &Context,
    id: &str,
    set: &[(&str, ParamValue)],
    c: &Case,
    aux: &str,
) -> (Vec<f32>, Vec<f32>) {
    let l = configured(ctx, id, set);
    let spec = &l.def().spec;
    let a = spec.aux.iter().find(|a| a.name.as_str() == aux).unwrap();
    let shape: Vec<usize> = a
        .dims()
        .iter()
        .map(|d| d.parse::<usize>().unwrap_or_else(|_| c.dims[*d]))
        .collect();
    let rows = c.rows(spec);
    let mut loss = vec![0f32; rows];
    let mut out = vec![f32::NAN; shape.iter().product()];
    {
        let mut cc = Compute::new(Reduction::None, &mut loss);
        for t in &c.inputs {
            cc.inputs.push(t.as_ref().map(|t| t.view()));
        }
        let mut cc = cc.aux(aux, TensorMut::new(&mut out, &shape));
        l.compute(&mut cc).unwrap();
    }
    (loss, out)
}

#[test]
fn auxiliary_outputs_match_the_cpu() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    for (b, d) in [(5usize, 5usize), (9, 3000), (1, 100_000)] {
        let c = case(
            &cpu,
            "grad_entanglement",
            &dims(&[("B", b), ("D", d)]),
            b as u64,
            false,
        );
        for set in [vec![], vec![("lambda_w", ParamValue::F64(0.25))]] {
            let (lg, sg) = run_aux(&g, "grad_entanglement", &set, &c, "stats");
            let (lc, sc) = run_aux(&cpu, "grad_entanglement", &set, &c, "stats");
            close(&format!("grad_entanglement B={b} D={d} cos"), &lg, &lc);
            close(&format!("grad_entanglement B={b} D={d} stats"), &sg, &sc);
        }
    }
    for (l, n, t) in [(3usize, 6usize, 4usize), (1, 37, 50), (4, 3, 700)] {
        let mut c = case(
            &cpu,
            "sparsepo_mask",
            &dims(&[("L", l), ("N", n), ("T", t)]),
            9,
            false,
        );
        // One fully masked-out row and one row with a single token (max = min).
        if let Some(m) = c.inputs[1].as_mut() {
            if let OwnedData::F32(v) = &mut m.data {
                v[..t].fill(0.0);
                if n > 1 {
                    v[t..2 * t].fill(0.0);
                    v[t + 1] = 1.0;
                }
            }
        }
        let (lg, mg) = run_aux(&g, "sparsepo_mask", &[], &c, "token_mask");
        let (lc, mc) = run_aux(&cpu, "sparsepo_mask", &[], &c, "token_mask");
        close(&format!("sparsepo_mask {l}x{n}x{t} mass"), &lg, &lc);
        close(&format!("sparsepo_mask {l}x{n}x{t} token_mask"), &mg, &mc);
    }
}

#[test]
fn aot_variants_match_on_large_batches() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    for b in [1usize, 2, 5, 37, 256, 257, 1500] {
        for variant in 0..2usize {
            let set = [
                ("variant", ParamValue::Enum(variant)),
                ("beta", ParamValue::F64(0.5)),
                ("label_smoothing", ParamValue::F64(0.1)),
            ];
            let c = case(&cpu, "aot", &dims(&[("B", b)]), b as u64, false);
            compare(&g, "aot", &set, &c, &format!("B={b}"));
        }
    }
    // Ties: equal margins sort by pair index on both backends.
    let mut c = case(&cpu, "aot", &dims(&[("B", 6)]), 2, false);
    for k in 0..4 {
        if let Some(t) = c.inputs[k].as_mut() {
            if let OwnedData::F32(v) = &mut t.data {
                v.fill(-1.0 - 0.25 * k as f32);
            }
        }
    }
    compare(&g, "aot", &[], &c, "ties");
}

fn f32_input(c: &Case, k: usize) -> Vec<f32> {
    c.inputs[k].as_ref().unwrap().f32().to_vec()
}

#[test]
fn device_buffers_match_host_results() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let up = |v: &[f32], off: usize| {
        let b = g.buffer(((v.len() + off) * 4) as u64).unwrap();
        b.write_f32(off, v).unwrap();
        b
    };
    // sparsepo: [2, B, T] inputs and gradients on the device at offsets.
    let (b, t) = (7usize, 9usize);
    let mut c = case(&cpu, "sparsepo", &dims(&[("B", b), ("T", t)]), 4, true);
    // Both masks given (the generic cases leave kl_mask out).
    c.inputs[5] = c.inputs[4].clone();
    let lc = cpu.loss("sparsepo").unwrap();
    let want = c.run(&lc, Reduction::Mean, true, None).unwrap();
    let bufs: Vec<_> = (0..6).map(|k| up(&f32_input(&c, k), 3)).collect();
    let gbufs: Vec<_> = (0..4)
        .map(|_| g.buffer(((2 * b * t + 5) * 4) as u64).unwrap())
        .collect();
    let mut loss = [0f32];
    {
        let mut cc = Compute::new(Reduction::Mean, &mut loss);
        for bb in &bufs {
            cc = cc.input(Tensor::device(bb, DType::F32, 3, &[2, b, t]));
        }
        for (slot, k) in [(0usize, 0usize), (1, 2), (2, 4), (3, 5)] {
            while cc.grads.len() <= k {
                cc.grads.push(losskit::tensor::Grad::None);
            }
            cc.grads[k] = losskit::tensor::Grad::Device(losskit::tensor::DeviceOut::new(
                &gbufs[slot],
                5,
                &[2, b, t],
            ));
        }
        g.loss("sparsepo").unwrap().compute(&mut cc).unwrap();
    }
    close("sparsepo device loss", &loss, &want.loss);
    for (slot, k) in [(0usize, 0usize), (1, 2), (2, 4), (3, 5)] {
        let got = gbufs[slot].read_f32(5, 2 * b * t).unwrap();
        close(
            &format!("sparsepo device grad {k}"),
            &got,
            want.grads[k].as_ref().unwrap(),
        );
    }
    // The RL losses and aot with device inputs and gradients.
    for (id, d) in [
        ("ppo_clip", dims(&[("N", 6), ("T", 11)])),
        ("grpo", dims(&[("N", 8), ("T", 11)])),
        ("steer", dims(&[("N", 6), ("T", 11)])),
        ("aot", dims(&[("B", 300)])),
    ] {
        let c = case(&cpu, id, &d, 8, true);
        let lc = cpu.loss(id).unwrap();
        let want = c.run(&lc, Reduction::Sum, true, Some(&[0.5])).unwrap();
        let spec = &lc.def().spec;
        let bufs: Vec<_> = (0..spec.inputs.len())
            .map(|k| up(&f32_input(&c, k), 1))
            .collect();
        let gk: Vec<usize> = (0..spec.inputs.len())
            .filter(|&k| spec.inputs[k].differentiable)
            .collect();
        let gbufs: Vec<_> = gk
            .iter()
            .map(|&k| g.buffer((f32_input(&c, k).len() * 4) as u64).unwrap())
            .collect();
        let mut loss = [0f32];
        {
            let go = [0.5f32];
            let mut cc = Compute::new(Reduction::Sum, &mut loss).grad_output(&go);
            for (k, bb) in bufs.iter().enumerate() {
                let shape = &c.inputs[k].as_ref().unwrap().shape;
                cc = cc.input(Tensor::device(bb, DType::F32, 1, shape));
            }
            for (j, &k) in gk.iter().enumerate() {
                let shape = c.inputs[k].as_ref().unwrap().shape.clone();
                while cc.grads.len() <= k {
                    cc.grads.push(losskit::tensor::Grad::None);
                }
                cc.grads[k] = losskit::tensor::Grad::Device(losskit::tensor::DeviceOut::new(
                    &gbufs[j], 0, &shape,
                ));
            }
            g.loss(id).unwrap().compute(&mut cc).unwrap();
        }
        close(&format!("{id} device loss"), &loss, &want.loss);
        for (j, &k) in gk.iter().enumerate() {
            let got = gbufs[j].read_f32(0, f32_input(&c, k).len()).unwrap();
            close(
                &format!("{id} device grad {k}"),
                &got,
                want.grads[k].as_ref().unwrap(),
            );
        }
    }
}

#[test]
fn forced_chunking_splits_rows_groups_and_blocks() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let dev = g.gpu_device().unwrap();
    // 1 KiB bindings: rows of 40 f32 come 6 per chunk (sparsepo: 3 pairs of two blocks), so
    // grpo's groups of 4 straddle chunks and steer's min/max pass takes several chunks.
    dev.set_max_binding_bytes(1024);
    for (id, d, set) in [
        ("ppo_clip", dims(&[("N", 23), ("T", 40)]), vec![]),
        (
            "grpo",
            dims(&[("N", 24), ("T", 40)]),
            vec![("scale_rewards", ParamValue::Enum(1))],
        ),
        ("grpo", dims(&[("N", 24), ("T", 40)]), vec![]),
        ("steer", dims(&[("N", 23), ("T", 40)]), vec![]),
        (
            "steer",
            dims(&[("N", 23), ("T", 40)]),
            vec![("mapping", ParamValue::Enum(1))],
        ),
        ("sparsepo", dims(&[("B", 13), ("T", 40)]), vec![]),
    ] {
        let c = case(&cpu, id, &d, 17, true);
        compare(&g, id, &set, &c, "chunked");
    }
}

#[test]
fn bad_inputs_give_the_cpu_errors() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let bad_mask = |id: &str, k: usize, d: BTreeMap<String, usize>| {
        let mut c = case(&cpu, id, &d, 1, true);
        if let Some(t) = c.inputs[k].as_mut() {
            if let OwnedData::F32(v) = &mut t.data {
                v[3] = 0.5;
            }
        }
        let ec = c
            .run(&cpu.loss(id).unwrap(), Reduction::Mean, true, None)
            .unwrap_err();
        let eg = c
            .run(&g.loss(id).unwrap(), Reduction::Mean, true, None)
            .unwrap_err();
        assert_eq!((eg.kind, eg.msg), (ec.kind, ec.msg), "{id}");
    };
    bad_mask("ppo_clip", 3, dims(&[]));
    bad_mask("grpo", 1, dims(&[("N", 8)]));
    bad_mask("steer", 4, dims(&[]));
    bad_mask("sparsepo", 3, dims(&[]));
    bad_mask("sparsepo_mask", 1, dims(&[]));
    // grpo: group size not dividing N; beta without ref_logps.
    for (set, opt) in [
        (vec![("group_size", ParamValue::I64(5))], true),
        (vec![("beta", ParamValue::F64(0.1))], false),
    ] {
        let mut c = case(&cpu, "grpo", &dims(&[("N", 8)]), 1, true);
        if !opt {
            c.inputs[4] = None;
        }
        let ec = c
            .run(&configured(&cpu, "grpo", &set), Reduction::Mean, true, None)
            .unwrap_err();
        let eg = c
            .run(&configured(&g, "grpo", &set), Reduction::Mean, true, None)
            .unwrap_err();
        assert_eq!((eg.kind, eg.msg), (ec.kind, ec.msg));
    }
    // sparsepo: kl_mask in common mode.
    let mut c = case(&cpu, "sparsepo", &dims(&[]), 1, true);
    c.inputs[5] = c.inputs[4].clone();
    let set = [("mask_mode", ParamValue::Enum(1))];
    let ec = c
        .run(
            &configured(&cpu, "sparsepo", &set),
            Reduction::Mean,
            true,
            None,
        )
        .unwrap_err();
    let eg = c
        .run(
            &configured(&g, "sparsepo", &set),
            Reduction::Mean,
            true,
            None,
        )
        .unwrap_err();
    assert_eq!((eg.kind, eg.msg), (ec.kind, ec.msg));
    assert_eq!(eg.kind, ErrorKind::InvalidParam);
}

/// A contract kernel using the three builtin extensions of the per-sample contract: an input
/// `[2, N, D]` with a fixed leading axis (`PerSampleWgsl::with_leading_axis`), an input bound
/// whole (`with_whole_inputs`) and a host constant (`compute_with_consts`).
mod lead_kernel {
    use losskit::backend::wgpu::PerSampleWgsl;
    use losskit::compute::Plan;
    use losskit::exec::kernel::{GpuKernel, SampleKernel};
    use losskit::params::{ParamSpec, Params};
    use losskit::registry::{InputSpec, LossDef, LossImpl, LossSpec};
    use losskit::{Compute, Result};

    /// l_i = c·Σ_{p,j} (p + 1)·x[p, i, j] + w[(i + 1) mod N]; ∂l_i/∂x[p, i, j] = c·(p + 1), with
    /// the constant c = 3·scale given by the host.
    pub const WGSL: &str = "
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> lk_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_x: array<f32>;

@compute @workgroup_size(64)
fn lk_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= lk.rows) { return; }
    let n = lk.dims[0].x;
    let d = lk.dims[0].y;
    let c = lk.params[0].y;
    var acc = 0.0;
    for (var p = 0u; p < 2u; p++) {
        for (var j = 0u; j < d; j++) {
            let e = (p * lk.rows + i) * d + j;
            acc += f32(p + 1u) * x[e];
            g_x[e] = c * f32(p + 1u);
        }
    }
    lk_loss[i] = c * acc + w[(lk.row_offset + i + 1u) % n];
}
";

    pub struct Lead;

    impl LossImpl for Lead {
        /// The host constant `c = 3·scale`, after the parameters.
        fn plan(&self, _s: &LossSpec, p: &Params, _c: &Compute<'_>) -> Result<Plan> {
            Ok(Plan {
                consts: vec![("c", 3.0 * p.f64("scale") as f32)],
                ..Plan::default()
            })
        }
        fn compute_cpu(&self, _s: &LossSpec, _p: &Params, _c: &mut Compute<'_>) -> Result<()> {
            losskit::bail!(Unsupported, "test_lead runs on the GPU only")
        }
    }

    pub fn def() -> LossDef {
        let spec = LossSpec::new("test_lead", "test", "leading-axis contract test", "test")
            .input(InputSpec::f32("x", "2,N,D").grad())
            .input(InputSpec::f32("w", "N"))
            .param(ParamSpec::f64("scale", 1.0, 0.0, 10.0, "scale"));
        let src = format!("{}\n{WGSL}", losskit::backend::wgpu::PRELUDE);
        // The plain contract refuses a differentiable input without the letter first.
        assert!(PerSampleWgsl::new(&spec, &src).is_err());
        assert!(PerSampleWgsl::with_leading_axis(&spec, &src).is_ok());
        LossDef::new(spec, Lead).gpu(GpuKernel::Sample(
            SampleKernel::new(&[], WGSL)
                .leading_axis()
                .whole_inputs(&[1])
                .host_consts(&["c"]),
        ))
    }
}

#[test]
fn per_sample_contract_extensions_leading_axis_whole_inputs_constants() {
    let Some(g) = own_gpu_ctx() else { return };
    g.register(lead_kernel::def()).unwrap();
    let mut l = g.loss("test_lead").unwrap();
    l.set("scale", ParamValue::F64(0.5)).unwrap();
    let c = 1.5f64;
    let (n, d) = (29usize, 24usize);
    let mut rng = losskit::testing::Rng::new(3);
    let x: Vec<f32> = (0..2 * n * d).map(|_| rng.normal() as f32).collect();
    let w: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let want_rows: Vec<f64> = (0..n)
        .map(|i| {
            let s: f64 = (0..2)
                .flat_map(|p| (0..d).map(move |j| (p, j)))
                .map(|(p, j)| (p + 1) as f64 * x[(p * n + i) * d + j] as f64)
                .sum();
            c * s + w[(i + 1) % n] as f64
        })
        .collect();
    let dev = g.gpu_device().unwrap();
    // Full bindings, then 512-byte bindings: 2 rows of 2 x 24 floats per chunk.
    for maxb in [None, Some(512u64)] {
        if let Some(b) = maxb {
            dev.set_max_binding_bytes(b);
        }
        // Host: none, and a strided gradient destination (blocks n·d + 5 apart).
        let mut loss = vec![0f32; n];
        let stride = n * d + 5;
        let mut gx = vec![-7f32; stride + n * d];
        let go: Vec<f32> = (0..n).map(|i| 0.5 + 0.01 * i as f32).collect();
        {
            let mut cc = Compute::new(Reduction::None, &mut loss)
                .input(Tensor::f32(&x, &[2, n, d]))
                .input(Tensor::f32(&w, &[n]))
                .grad(
                    0,
                    TensorMut::new(&mut gx, &[2, n, d]).with_row_stride(stride),
                )
                .grad_output(&go);
            l.compute(&mut cc).unwrap();
        }
        let wl: Vec<f32> = want_rows.iter().map(|&v| v as f32).collect();
        close(&format!("lead {maxb:?} loss"), &loss, &wl);
        for p in 0..2 {
            for i in 0..n {
                for j in 0..d {
                    let got = gx[p * stride + i * d + j];
                    let want = (c * (p + 1) as f64 * go[i] as f64) as f32;
                    close(
                        &format!("lead {maxb:?} grad [{p},{i},{j}]"),
                        &[got],
                        &[want],
                    );
                }
            }
        }
        assert!(
            gx[n * d..stride].iter().all(|&v| v == -7.0),
            "gap untouched"
        );
        // Device input and gradient at offsets, mean.
        let xb = g.buffer(((2 * n * d + 3) * 4) as u64).unwrap();
        xb.write_f32(3, &x).unwrap();
        let gb = g.buffer(((2 * n * d + 1) * 4) as u64).unwrap();
        let mut m = [0f32];
        {
            let mut cc = Compute::new(Reduction::Mean, &mut m)
                .input(Tensor::device(&xb, DType::F32, 3, &[2, n, d]))
                .input(Tensor::f32(&w, &[n]));
            cc.grads.push(losskit::tensor::Grad::Device(
                losskit::tensor::DeviceOut::new(&gb, 1, &[2, n, d]),
            ));
            l.compute(&mut cc).unwrap();
        }
        let mean = want_rows.iter().sum::<f64>() / n as f64;
        close(&format!("lead {maxb:?} device mean"), &m, &[mean as f32]);
        let got = gb.read_f32(1, 2 * n * d).unwrap();
        let want: Vec<f32> = (0..2 * n * d)
            .map(|e| (c * (e / (n * d) + 1) as f64 / n as f64) as f32)
            .collect();
        close(&format!("lead {maxb:?} device grad"), &got, &want);
    }
}

#[test]
fn rows_too_long_for_llvmpipe_loops_are_refused_there() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();
    let llvmpipe = g
        .device_info()
        .is_some_and(|i| i.name.to_lowercase().contains("llvmpipe"));
    for (id, d) in [
        ("ppo_clip", dims(&[("N", 2), ("T", 40_000)])),
        ("sparsepo", dims(&[("B", 2), ("T", 20_000)])),
    ] {
        let c = case(&cpu, id, &d, 5, false);
        let r = c.run(&g.loss(id).unwrap(), Reduction::None, true, None);
        if llvmpipe {
            let e = r.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unsupported, "{id}: {}", e.msg);
            assert!(e.msg.contains("llvmpipe"), "{}", e.msg);
        } else {
            let want = c
                .run(&cpu.loss(id).unwrap(), Reduction::None, true, None)
                .unwrap();
            let got = r.unwrap();
            close(&format!("{id} long rows"), &got.loss, &want.loss);
        }
    }
}

/// Set input `k` of `case` to `v`.
fn set_input(case: &mut Case, k: usize, v: Vec<f32>) {
    let t = case.inputs[k].as_mut().expect("input present");
    assert_eq!(t.f32().len(), v.len(), "input {k}");
    t.data = OwnedData::F32(v);
}

/// Rows within llvmpipe's loop limit whose terms all have one sign and are built so that a
/// plain running f32 sum provably misses the tolerance: after a large first term (or a run
/// of ones) every further term is below half an ulp of the running sum, so each add rounds
/// back to it and the row loses (T - 1)·term. The kernels' blocked sums (`lk_acc`) add the
/// small terms among themselves first. (A Kahan sum also passes here; on drivers that
/// optimise its compensation away it degrades to the plain sum, which this test rejects.)
#[test]
fn same_sign_long_rows_need_the_blocked_sums() {
    let Some(g) = own_gpu_ctx() else { return };
    let cpu = Context::cpu();

    // ppo_clip: r = 1 (logps = old_logps), so each token's surrogate is -A: -1024, then
    // 29999 terms of -6e-5 (half an ulp of 1024 is 6.1e-5): a plain sum loses 1.8 of 1025.8.
    let t = 30_000;
    let mut c = case(&cpu, "ppo_clip", &dims(&[("N", 2), ("T", t)]), 3, true);
    set_input(&mut c, 0, vec![-1.0; 2 * t]);
    set_input(&mut c, 1, vec![-1.0; 2 * t]);
    let adv: Vec<f32> = (0..2 * t)
        .map(|e| if e % t == 0 { 1024.0 } else { 6.0e-5 })
        .collect();
    set_input(&mut c, 2, adv);
    set_input(&mut c, 3, vec![1.0; 2 * t]);
    for agg in 0..3usize {
        let set = [("loss_agg", ParamValue::Enum(agg))];
        compare(&g, "ppo_clip", &set, &c, "same-sign long rows");
    }

    // sparsepo: chosen margins -1024 then -6e-5 (rejected block masked out), no KL, so
    // z = beta·u with u = -1024.96, where a plain sum gives -1024.
    let t = 16_000;
    let mut c = case(&cpu, "sparsepo", &dims(&[("B", 2), ("T", t)]), 3, false);
    let lp: Vec<f32> = (0..4 * t)
        .map(|e| if e % t == 0 { -1024.0 } else { -6.0e-5 })
        .collect();
    set_input(&mut c, 0, lp);
    set_input(&mut c, 1, vec![0.0; 4 * t]);
    set_input(&mut c, 2, vec![0.0; 4 * t]);
    let mask: Vec<f32> = (0..4 * t).map(|e| (e < 2 * t) as u8 as f32).collect();
    set_input(&mut c, 3, mask);
    compare(&g, "sparsepo", &[], &c, "same-sign long rows");

    // sparsepo_mask (one layer): 8192 tokens of activation 1, one of 0, then 4.8e-4 (below
    // half an ulp of 8192, 4.88e-4): the row's mass is 8195.75, a plain sum stops at 8192.
    let t = 16_000;
    let mut c = case(
        &cpu,
        "sparsepo_mask",
        &dims(&[("L", 1), ("N", 2), ("T", t)]),
        3,
        false,
    );
    let act: Vec<f32> = (0..2 * t)
        .map(|e| match e % t {
            j if j < 8192 => 1.0,
            8192 => 0.0,
            _ => 4.8e-4,
        })
        .collect();
    set_input(&mut c, 0, act);
    set_input(&mut c, 1, vec![1.0; 2 * t]);
    compare(&g, "sparsepo_mask", &[], &c, "same-sign long rows");
}
