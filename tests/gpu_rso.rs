//! GPU (wgpu) tests of `rso_accept`: the kernel must pick exactly the candidates the CPU
//! path picks (its f64 test `u < exp((r − M)/β)`), with prompts whose comparisons are too
//! close to call in f32 redone on the host. Random prompts (K up to 64, m = 1 and m = K,
//! padding), constructed near-ties (u at the f64 threshold rounded to f32 and its
//! neighbours), `u = 0` far below the maximum, extreme β, non-finite rewards, chunked
//! launches, device-resident inputs, and the checks (same error, nothing written).
//!
//! `accepted` must match exactly; the per-prompt value and `rso_accept_prob` within the
//! parity tolerance `|gpu − cpu| <= 2e-5 + 2e-4·|cpu|` (NaN matching NaN). Without a usable
//! adapter every test passes after printing "skipped", unless `LOSSKIT_REQUIRE_GPU=1`.

#![cfg(feature = "wgpu")]

use losskit::testing::Rng;
use losskit::{
    BackendKind, Compute, Context, DType, ErrorKind, Loss, ParamValue, Reduction, Tensor, TensorMut,
};

#[path = "common/gpu.rs"]
mod gpu_common;
use gpu_common::{close, gpu_ctx};

/// One prompt batch: rewards `[n, k]`, uniforms `[n, k, k]`, optional valid `[n, k]`.
#[derive(Clone)]
struct Batch {
    n: usize,
    k: usize,
    r: Vec<f32>,
    u: Vec<f32>,
    valid: Option<Vec<f32>>,
}

/// What one call wrote: the loss, `accepted`, `rso_accept_prob`.
#[derive(Debug)]
struct Out {
    loss: Vec<f32>,
    acc: Vec<f32>,
    prob: Vec<f32>,
}

fn pair(g: &Context, beta: f64, m: usize) -> (Loss, Loss) {
    let mut lg = g.loss("rso_accept").unwrap();
    let mut lc = Context::cpu().loss("rso_accept").unwrap();
    for l in [&mut lg, &mut lc] {
        l.set("beta", ParamValue::F64(beta)).unwrap();
        l.set("num_samples", ParamValue::I64(m as i64)).unwrap();
    }
    (lg, lc)
}

fn run(l: &Loss, b: &Batch, red: Reduction, go: Option<&[f32]>) -> losskit::Result<Out> {
    let (n, k) = (b.n, b.k);
    let mut o = Out {
        loss: vec![7.0; if red == Reduction::None { n } else { 1 }],
        acc: vec![7.0; n * k],
        prob: vec![7.0; n * k],
    };
    {
        let mut cc = Compute::new(red, &mut o.loss)
            .input(Tensor::f32(&b.r, &[n, k]))
            .input(Tensor::f32(&b.u, &[n, k, k]));
        cc = match &b.valid {
            Some(v) => cc.input(Tensor::f32(v, &[n, k])),
            None => cc.absent(),
        };
        cc = cc
            .aux("accepted", TensorMut::new(&mut o.acc, &[n, k]))
            .aux("rso_accept_prob", TensorMut::new(&mut o.prob, &[n, k]));
        cc.grad_output = go;
        l.compute(&mut cc)?;
    }
    Ok(o)
}

/// GPU against CPU: identical picks, close values, every reduction with and without an
/// upstream gradient.
fn same(what: &str, lg: &Loss, lc: &Loss, b: &Batch) {
    let go_rows: Vec<f32> = (0..b.n).map(|i| 0.4 + 0.3 * (i % 4) as f32).collect();
    for red in [Reduction::None, Reduction::Mean, Reduction::Sum] {
        for with_go in [false, true] {
            let go_one = [0.6f32];
            let go = with_go.then_some(if red == Reduction::None {
                &go_rows[..]
            } else {
                &go_one[..]
            });
            let w = format!("{what} {} go {with_go}", red.name());
            let og = run(lg, b, red, go).unwrap_or_else(|e| panic!("{w}: GPU: {e}"));
            let oc = run(lc, b, red, go).unwrap_or_else(|e| panic!("{w}: CPU: {e}"));
            assert_eq!(og.acc, oc.acc, "{w}: accepted");
            close(&format!("{w}: loss"), &og.loss, &oc.loss);
            close(&format!("{w}: rso_accept_prob"), &og.prob, &oc.prob);
        }
    }
}

/// A uniform draw in [0, 1): a multiple of 2^-24 (as float32 generators give), or now and
/// then an arbitrary f32 below 1.
fn draw(rng: &mut Rng) -> f32 {
    if rng.below(4) == 0 {
        (rng.uniform() as f32).min(1.0 - f32::EPSILON / 2.0)
    } else {
        (rng.below(1 << 24) as f64 / (1u64 << 24) as f64) as f32
    }
}

/// Random prompts: rewards `scale·N(0, 1)`, `pad` = some candidates padded out (at least
/// `m` valid per prompt; padded rewards are junk).
fn random(rng: &mut Rng, n: usize, k: usize, m: usize, pad: bool, scale: f64) -> Batch {
    let r: Vec<f32> = (0..n * k).map(|_| (scale * rng.normal()) as f32).collect();
    let u: Vec<f32> = (0..n * k * k).map(|_| draw(rng)).collect();
    let valid = pad.then(|| {
        let mut v = vec![0f32; n * k];
        for i in 0..n {
            let have = m + rng.below((k - m + 1) as u64) as usize;
            let mut idx: Vec<usize> = (0..k).collect();
            for a in 0..k {
                let b = a + rng.below((k - a) as u64) as usize;
                idx.swap(a, b);
            }
            for &j in &idx[..have] {
                v[i * k + j] = 1.0;
            }
        }
        v
    });
    Batch { n, k, r, u, valid }
}

#[test]
fn random_prompts_pick_exactly_like_the_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let mut rng = Rng::new(2024);
    let mut cases = 0;
    for &k in &[1usize, 2, 3, 7, 16, 33, 64] {
        let mut ms = vec![1, k.div_ceil(2), k];
        ms.sort_unstable();
        ms.dedup();
        for &m in &ms {
            for &beta in &[0.01, 0.3, 1.0, 8.0, 1e4] {
                for pad in [false, true] {
                    let scale = [0.1, 1.0, 30.0][cases % 3];
                    let n = if k >= 33 { 9 } else { 23 };
                    let b = random(&mut rng, n, k, m, pad, scale);
                    let (lg, lc) = pair(&g, beta, m);
                    same(
                        &format!("K {k} m {m} beta {beta} pad {pad} scale {scale}"),
                        &lg,
                        &lc,
                        &b,
                    );
                    cases += 1;
                }
            }
        }
    }
    eprintln!("rso_accept: {cases} random batches picked identically");
}

/// The f64 threshold `exp((r − M)/β)` and the f32 values around it: a case whose uniform
/// sits within a few ulp of the threshold, where f32 arithmetic cannot tell the answer.
fn next_up(x: f32) -> f32 {
    f32::from_bits(x.to_bits() + 1)
}

fn next_down(x: f32) -> f32 {
    if x == 0.0 {
        0.0
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

#[test]
fn near_ties_are_decided_as_the_cpu_decides() {
    let Some(g) = gpu_ctx() else { return };
    let k = 8;
    let mut rng = Rng::new(7);
    for &beta in &[0.05f64, 0.5, 1.0, 3.0] {
        let base: Vec<f32> = vec![0.0, -0.01, -0.3, -0.7, -1.1, -2.0, -5.0, -9.5];
        let rows: Vec<f32> = base
            .iter()
            .map(|&x| 1.7 + x * beta as f32 * if beta < 0.1 { 3.0 } else { 1.0 })
            .collect();
        let mut b = Batch {
            n: 0,
            k,
            r: Vec::new(),
            u: Vec::new(),
            valid: None,
        };
        let mut straddles = 0;
        for j in 1..k {
            let top = rows.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let t = ((rows[j] as f64 - top) / beta).exp();
            let t32 = t as f32;
            if t32 >= 1.0 {
                continue;
            }
            let mut around = vec![
                next_down(next_down(t32)),
                next_down(t32),
                t32,
                next_up(t32),
                next_up(next_up(t32)),
            ];
            around.retain(|&x| x < 1.0);
            let decisions: Vec<bool> = around.iter().map(|&x| (x as f64) < t).collect();
            if decisions.iter().any(|&d| d) && decisions.iter().any(|&d| !d) {
                straddles += 1;
            }
            for &x in &around {
                // Round 0 of this prompt tests candidate j against x; other draws random.
                let mut u: Vec<f32> = (0..k * k).map(|_| draw(&mut rng)).collect();
                u[j] = x;
                b.r.extend_from_slice(&rows);
                b.u.extend_from_slice(&u);
                b.n += 1;
            }
        }
        assert!(
            straddles >= 5,
            "beta {beta}: the constructed uniforms must fall on both sides of the thresholds"
        );
        for m in [1, 3, k] {
            let (lg, lc) = pair(&g, beta, m);
            same(&format!("near ties beta {beta} m {m}"), &lg, &lc, &b);
        }
    }
}

#[test]
fn zero_uniforms_far_below_the_maximum() {
    let Some(g) = gpu_ctx() else { return };
    // x = (r − M)/β of -50 (decided by f32), -119, -121 and -700 (u = 0 accepted by the
    // CPU: exp(x) > 0 in f64), -800 (exp underflows in f64: rejected), with u = 0 and with
    // the smallest positive f32.
    let k = 3;
    let mut b = Batch {
        n: 0,
        k,
        r: Vec::new(),
        u: Vec::new(),
        valid: None,
    };
    for x in [-50.0f32, -119.0, -121.0, -700.0, -800.0] {
        for u0 in [0.0f32, f32::from_bits(1), 1e-30, 0.5] {
            b.r.extend_from_slice(&[0.0, x, x / 2.0]);
            let mut u = vec![0.5f32; k * k];
            u[1] = u0;
            b.u.extend_from_slice(&u);
            b.n += 1;
        }
    }
    for m in [1, 2, 3] {
        let (lg, lc) = pair(&g, 1.0, m);
        same(&format!("u = 0 far m {m}"), &lg, &lc, &b);
    }
}

#[test]
fn extreme_beta_and_non_finite_rewards_match() {
    let Some(g) = gpu_ctx() else { return };
    let mut rng = Rng::new(99);
    let b = random(&mut rng, 12, 6, 2, true, 1.0);
    for beta in [1e-40, 1e-31, 1e-29, 1e29, 1e31, 1e40] {
        let (lg, lc) = pair(&g, beta, 2);
        same(&format!("beta {beta}"), &lg, &lc, &b);
    }
    // Rewards of ±3e38 (their difference overflows f32), +inf, NaN in a padded slot.
    let mut b = random(&mut rng, 6, 4, 2, false, 1.0);
    b.r[0] = 3e38;
    b.r[1] = -3e38;
    b.r[4] = f32::INFINITY;
    b.r[9] = f32::NAN;
    b.r[13] = f32::NEG_INFINITY;
    let mut v = vec![1f32; 6 * 4];
    v[20] = 0.0;
    b.r[20] = f32::NAN;
    b.valid = Some(v);
    let (lg, lc) = pair(&g, 0.7, 2);
    same("non-finite rewards", &lg, &lc, &b);
}

#[test]
fn chunked_launches_match() {
    let Some(g0) = gpu_ctx() else { return };
    drop(g0);
    let g = Context::new(BackendKind::Wgpu).expect("second wgpu context");
    // 1 KiB bindings: uniforms rows of 100 floats come 2 per chunk.
    g.gpu_device().unwrap().set_max_binding_bytes(1024);
    let mut rng = Rng::new(5);
    let b = random(&mut rng, 21, 10, 4, true, 2.0);
    let (lg, lc) = pair(&g, 0.4, 4);
    same("chunked", &lg, &lc, &b);
}

#[test]
fn device_inputs_match_and_are_checked() {
    let Some(g) = gpu_ctx() else { return };
    let mut rng = Rng::new(31);
    let (n, k, m) = (17, 12, 5);
    let b = random(&mut rng, n, k, m, true, 1.5);
    let (lg, lc) = pair(&g, 0.25, m);
    let up = |v: &[f32]| {
        let d = g.buffer((v.len() * 4) as u64).unwrap();
        d.write_f32(0, v).unwrap();
        d
    };
    let valid = b.valid.clone().unwrap();
    let (dr, du, dv) = (up(&b.r), up(&b.u), up(&valid));
    let run_dev = |o: &mut Out| {
        let mut cc = Compute::new(Reduction::None, &mut o.loss)
            .input(Tensor::device(&dr, DType::F32, 0, &[n, k]))
            .input(Tensor::device(&du, DType::F32, 0, &[n, k, k]))
            .input(Tensor::device(&dv, DType::F32, 0, &[n, k]))
            .aux("accepted", TensorMut::new(&mut o.acc, &[n, k]))
            .aux("rso_accept_prob", TensorMut::new(&mut o.prob, &[n, k]));
        lg.compute(&mut cc)
    };
    let fresh = || Out {
        loss: vec![7.0; n],
        acc: vec![7.0; n * k],
        prob: vec![7.0; n * k],
    };
    let mut o = fresh();
    run_dev(&mut o).unwrap();
    let oc = run(&lc, &b, Reduction::None, None).unwrap();
    assert_eq!(o.acc, oc.acc, "device accepted");
    close("device loss", &o.loss, &oc.loss);
    close("device prob", &o.prob, &oc.prob);
    // A uniform of 1 in device memory is refused like a host one; nothing is written.
    du.write_f32(5 * k * k + 3, &[1.0]).unwrap();
    let mut bad = b.clone();
    bad.u[5 * k * k + 3] = 1.0;
    let ec = run(&lc, &bad, Reduction::None, None).unwrap_err();
    let mut o = fresh();
    let e = run_dev(&mut o).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{}", e.msg);
    assert_eq!(e.msg, ec.msg);
    assert!(e.msg.contains("uniforms["), "{}", e.msg);
    assert!(
        o.loss
            .iter()
            .chain(&o.acc)
            .chain(&o.prob)
            .all(|&x| x == 7.0)
    );
}

/// The GPU path refuses `b` exactly as the CPU path does and writes nothing.
fn same_error(what: &str, lg: &Loss, lc: &Loss, b: &Batch, kind: ErrorKind, needle: &str) {
    let ec = run(lc, b, Reduction::Mean, None).expect_err(what);
    let mut n_loss = vec![7.0f32];
    let (n, k) = (b.n, b.k);
    let mut acc = vec![7.0f32; n * k];
    let mut prob = vec![7.0f32; n * k];
    let eg = {
        let mut cc = Compute::new(Reduction::Mean, &mut n_loss)
            .input(Tensor::f32(&b.r, &[n, k]))
            .input(Tensor::f32(&b.u, &[n, k, k]));
        cc = match &b.valid {
            Some(v) => cc.input(Tensor::f32(v, &[n, k])),
            None => cc.absent(),
        };
        cc = cc
            .aux("accepted", TensorMut::new(&mut acc, &[n, k]))
            .aux("rso_accept_prob", TensorMut::new(&mut prob, &[n, k]));
        lg.compute(&mut cc).expect_err(what)
    };
    assert_eq!(ec.kind, kind, "{what}: CPU: {}", ec.msg);
    assert_eq!(eg.kind, ec.kind, "{what}: GPU {} vs CPU {}", eg.msg, ec.msg);
    assert_eq!(eg.msg, ec.msg, "{what}");
    assert!(ec.msg.contains(needle), "{what}: {}", ec.msg);
    assert!(n_loss.iter().chain(&acc).chain(&prob).all(|&x| x == 7.0));
}

#[test]
fn invalid_calls_fail_like_the_cpu() {
    let Some(g) = gpu_ctx() else { return };
    let mut rng = Rng::new(3);
    let b = random(&mut rng, 5, 4, 2, false, 1.0);
    let (lg, lc) = pair(&g, 0.5, 5);
    same_error(
        "m > K",
        &lg,
        &lc,
        &b,
        ErrorKind::InvalidParam,
        "num_samples = 5",
    );
    let (lg, lc) = pair(&g, 0.5, 2);
    for (at, x) in [(7, 1.0f32), (30, -0.25), (41, f32::NAN), (12, 2.0)] {
        let mut bad = b.clone();
        bad.u[at] = x;
        same_error(
            &format!("uniform {x}"),
            &lg,
            &lc,
            &bad,
            ErrorKind::InvalidInput,
            &format!("uniforms[{at}]"),
        );
    }
    let mut bad = b.clone();
    let mut v = vec![1f32; 5 * 4];
    v[6] = 0.5;
    bad.valid = Some(v.clone());
    same_error(
        "valid 0.5",
        &lg,
        &lc,
        &bad,
        ErrorKind::InvalidInput,
        "valid[6]",
    );
    v[6] = 1.0;
    v[12..16].copy_from_slice(&[0.0, 1.0, 0.0, 0.0]);
    bad.valid = Some(v);
    same_error(
        "too few valid",
        &lg,
        &lc,
        &bad,
        ErrorKind::InvalidInput,
        "prompt 3 has 1 valid",
    );
}

#[test]
fn long_rows_are_refused_on_llvmpipe_only() {
    let Some(g) = gpu_ctx() else { return };
    let llvmpipe = g
        .device_info()
        .is_some_and(|i| i.name.to_lowercase().contains("llvmpipe"));
    let mut rng = Rng::new(11);
    // K = 179 fits llvmpipe's loop limit (2K² + 5K ≤ 65535), K = 180 does not.
    let b = random(&mut rng, 2, 179, 179, false, 1.0);
    let (lg, lc) = pair(&g, 1.0, 179);
    same("K 179", &lg, &lc, &b);
    let b = random(&mut rng, 2, 180, 3, false, 1.0);
    let (lg, lc) = pair(&g, 1.0, 3);
    if llvmpipe {
        let e = run(&lg, &b, Reduction::Mean, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{}", e.msg);
        assert!(e.msg.contains("llvmpipe"), "{}", e.msg);
    } else {
        same("K 180", &lg, &lc, &b);
    }
}
