//! cut_cross_entropy: agreement with the dense path (matrix product + the registered
//! `cross_entropy`, chain rule for the gradients) and with an f64 reference for every option
//! and reduction, odd shapes, the bias as an input of its own, finite differences, golden
//! values from JAX (tests/golden/gen/lm.py), the filtering error bound, and bit-identical
//! results for any thread count.

use crate::common::{FD_TOL, GRAD_TOL, LOSS_TOL, assert_close};
use losskit::testing::{Case, OwnedData, OwnedTensor, Rng, gradcheck};
use losskit::{Compute, Context, ErrorKind, ParamValue, Reduction, Tensor, TensorMut};
use std::collections::BTreeMap;

use crate::common::cce::{
    Gen, ID, Out, Prob, REDUCTIONS, loss_with, out_len, run as cce, try_run as try_cce,
};

#[derive(Clone, Debug)]
struct Ref {
    loss: Vec<f64>,
    de: Vec<f64>,
    dc: Vec<f64>,
    db: Vec<f64>,
    lse: Vec<f64>,
}

fn logits64(p: &Prob) -> Vec<f64> {
    let mut a = vec![0.0f64; p.n * p.v];
    for i in 0..p.n {
        for v in 0..p.v {
            let mut s = p.bias.as_ref().map_or(0.0, |b| b[v] as f64);
            for k in 0..p.d {
                s += p.e[i * p.d + k] as f64 * p.c[v * p.d + k] as f64;
            }
            a[i * p.v + v] = s;
        }
    }
    a
}

/// Chain rule from the logit gradient `g [N, V]`.
fn chain(p: &Prob, g: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut de = vec![0.0; p.n * p.d];
    let mut dc = vec![0.0; p.v * p.d];
    let mut db = vec![0.0; p.v];
    for i in 0..p.n {
        for v in 0..p.v {
            let gv = g[i * p.v + v];
            db[v] += gv;
            for k in 0..p.d {
                de[i * p.d + k] += gv * p.c[v * p.d + k] as f64;
                dc[v * p.d + k] += gv * p.e[i * p.d + k] as f64;
            }
        }
    }
    (de, dc, db)
}

/// The dense path: logits = E Cᵀ + bias (f64, rounded to f32), the registered
/// `cross_entropy` with the same options, then the chain rule.
fn dense(
    ctx: &Context,
    p: &Prob,
    params: &[(&str, ParamValue)],
    red: Reduction,
    go: Option<&[f32]>,
) -> Ref {
    let mut ce = ctx.loss("cross_entropy").unwrap();
    for (k, v) in params {
        if ["ignore_index", "softcap", "z_loss_coef", "normalizer"].contains(k) {
            ce.set(k, *v).unwrap();
        }
    }
    let logits: Vec<f32> = logits64(p).iter().map(|&x| x as f32).collect();
    let mut loss = vec![0.0f32; out_len(red, p.n)];
    let mut g = vec![0.0f32; p.n * p.v];
    let mut lse = vec![0.0f32; p.n];
    {
        let mut cm = Compute::new(red, &mut loss)
            .input(Tensor::f32(&logits, &[p.n, p.v]))
            .input(Tensor::i64(&p.t, &[p.n]))
            .absent();
        cm = match &p.sw {
            Some(w) => cm.input(Tensor::f32(w, &[p.n])),
            None => cm.absent(),
        };
        cm = cm
            .grad(0, TensorMut::new(&mut g, &[p.n, p.v]))
            .aux("lse", TensorMut::new(&mut lse, &[p.n]));
        if let Some(go) = go {
            cm = cm.grad_output(go);
        }
        ce.compute(&mut cm).unwrap();
    }
    let g64: Vec<f64> = g.iter().map(|&x| x as f64).collect();
    let (de, dc, db) = chain(p, &g64);
    Ref {
        loss: loss.iter().map(|&x| x as f64).collect(),
        de,
        dc,
        db,
        lse: lse.iter().map(|&x| x as f64).collect(),
    }
}

/// Options of the f64 reference.
#[derive(Clone, Copy, Default)]
struct Opt {
    ignore: i64,
    cap: f64,
    lam: f64,
    normalizer: f64,
}

fn opt_of(params: &[(&str, ParamValue)]) -> Opt {
    let mut o = Opt {
        ignore: -100,
        ..Opt::default()
    };
    for (k, v) in params {
        match (*k, *v) {
            ("ignore_index", ParamValue::I64(x)) => o.ignore = x,
            ("softcap", ParamValue::F64(x)) => o.cap = x,
            ("z_loss_coef", ParamValue::F64(x)) => o.lam = x,
            ("normalizer", ParamValue::F64(x)) => o.normalizer = x,
            _ => {}
        }
    }
    o
}

/// Per-row upstream factors `w_i` (0 on ignored rows) of a reduction.
fn row_weights(p: &Prob, o: Opt, red: Reduction, go: Option<&[f32]>) -> Vec<f64> {
    let valid = |i: usize| p.t[i] != o.ignore;
    let s = |i: usize| p.sw.as_ref().map_or(1.0, |w| w[i] as f64);
    let mut den: f64 = (0..p.n).filter(|&i| valid(i)).map(s).sum();
    if o.normalizer > 0.0 {
        den = o.normalizer;
    }
    (0..p.n)
        .map(|i| {
            if !valid(i) {
                return 0.0;
            }
            let up = match red {
                Reduction::None => go.map_or(1.0, |g| g[i] as f64),
                Reduction::Sum => go.map_or(1.0, |g| g[0] as f64),
                Reduction::Mean if den > 0.0 => go.map_or(1.0, |g| g[0] as f64) / den,
                Reduction::Mean => 0.0,
            };
            up * s(i)
        })
        .collect()
}

/// The spec's formulas in f64; also returns the logit gradient `G` and the probabilities.
fn reference(p: &Prob, o: Opt, red: Reduction, go: Option<&[f32]>) -> (Ref, Vec<f64>, Vec<f64>) {
    let a = logits64(p);
    let z: Vec<f64> = a
        .iter()
        .map(|&x| {
            if o.cap > 0.0 {
                o.cap * (x / o.cap).tanh()
            } else {
                x
            }
        })
        .collect();
    let w = row_weights(p, o, red, go);
    let mut rows = vec![0.0; p.n];
    let mut lse = vec![0.0; p.n];
    let mut g = vec![0.0; p.n * p.v];
    let mut prob = vec![0.0; p.n * p.v];
    for i in 0..p.n {
        if p.t[i] == o.ignore {
            continue;
        }
        let zi = &z[i * p.v..(i + 1) * p.v];
        let m = zi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let l = m + zi.iter().map(|&x| (x - m).exp()).sum::<f64>().ln();
        let t = p.t[i] as usize;
        lse[i] = l;
        rows[i] = (l - zi[t] + o.lam * l * l) * p.sw.as_ref().map_or(1.0, |s| s[i] as f64);
        for v in 0..p.v {
            let pv = (zi[v] - l).exp();
            prob[i * p.v + v] = pv;
            let slope = if o.cap > 0.0 {
                1.0 - (zi[v] / o.cap).powi(2)
            } else {
                1.0
            };
            let delta = if v == t { 1.0 } else { 0.0 };
            g[i * p.v + v] = w[i] * (pv * (1.0 + 2.0 * o.lam * l) - delta) * slope;
        }
    }
    let s = |i: usize| p.sw.as_ref().map_or(1.0, |w| w[i] as f64);
    let mut den: f64 = (0..p.n).filter(|&i| p.t[i] != o.ignore).map(s).sum();
    if o.normalizer > 0.0 {
        den = o.normalizer;
    }
    let loss = match red {
        Reduction::None => rows.clone(),
        Reduction::Sum => vec![rows.iter().sum()],
        Reduction::Mean => vec![if den > 0.0 {
            rows.iter().sum::<f64>() / den
        } else {
            0.0
        }],
    };
    let (de, dc, db) = chain(p, &g);
    (
        Ref {
            loss,
            de,
            dc,
            db,
            lse,
        },
        g,
        prob,
    )
}

fn check(label: &str, got: &Out, want: &Ref, bias: bool, tol: f64) {
    assert_close(
        &format!("{label}: loss"),
        &got.loss,
        &want.loss,
        LOSS_TOL.max(tol),
    );
    assert_close(
        &format!("{label}: lse"),
        &got.lse,
        &want.lse,
        LOSS_TOL.max(tol),
    );
    assert_close(&format!("{label}: de"), &got.de, &want.de, tol);
    assert_close(&format!("{label}: dc"), &got.dc, &want.dc, tol);
    if bias {
        assert_close(
            &format!("{label}: dbias"),
            got.db.as_ref().unwrap(),
            &want.db,
            tol,
        );
    }
}

fn go_for(red: Reduction, n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..out_len(red, n))
        .map(|_| (0.5 + r.uniform()) as f32)
        .collect()
}

/// Option sets the agreement tests run, each with automatic and small odd tiles.
fn option_sets() -> Vec<Vec<(&'static str, ParamValue)>> {
    use ParamValue::{F64, I64};
    vec![
        vec![],
        vec![("ignore_index", I64(2))],
        vec![("softcap", F64(3.0))],
        vec![("z_loss_coef", F64(0.02))],
        vec![("normalizer", F64(5.0))],
        vec![
            ("softcap", F64(2.0)),
            ("z_loss_coef", F64(0.01)),
            ("normalizer", F64(3.0)),
            ("ignore_index", I64(0)),
        ],
    ]
}

fn tile_sets() -> Vec<Vec<(&'static str, ParamValue)>> {
    use ParamValue::I64;
    vec![
        vec![],
        vec![("block_rows", I64(2)), ("block_vocab", I64(3))],
        vec![("block_rows", I64(3)), ("block_vocab", I64(5))],
    ]
}

#[test]
fn agrees_with_the_dense_path_for_every_option_and_reduction() {
    let ctx = Context::cpu();
    let mut seed = 1;
    for opts in option_sets() {
        let o = opt_of(&opts);
        for tiles in tile_sets() {
            let mut params = opts.clone();
            params.extend(tiles.iter().cloned());
            let l = loss_with(&ctx, &params);
            for red in REDUCTIONS {
                for (bias, sw) in [(false, false), (true, false), (false, true), (true, true)] {
                    seed += 1;
                    let mut g = Gen::new(13, 7, 29);
                    g.ignored = 3;
                    g.ignore_index = o.ignore;
                    g.bias = bias;
                    g.sw = sw;
                    let p = Prob::random(g, seed);
                    let go = go_for(red, p.n, seed);
                    let label = format!("{params:?} {red:?} bias={bias} sw={sw}");
                    let got = cce(&l, &p, red, Some(&go));
                    let want = dense(&ctx, &p, &params, red, Some(&go));
                    check(&format!("{label} vs dense"), &got, &want, bias, GRAD_TOL);
                    let (exact, _, _) = reference(&p, o, red, Some(&go));
                    check(&format!("{label} vs f64"), &got, &exact, bias, GRAD_TOL);
                }
            }
        }
    }
}

#[test]
fn matches_jax_golden_values() {
    let cases = crate::golden::load(ID);
    assert!(cases.len() >= 10);
    crate::golden::check(ID);
}

#[test]
fn larger_problem_with_automatic_tiles_matches_f64() {
    // V = 1100 spans three automatic vocabulary tiles (512, 512, 76); the 560 contributing
    // rows make two automatic row tiles (512, 48).
    let ctx = Context::cpu();
    let l = ctx.loss(ID).unwrap();
    let mut g = Gen::new(600, 24, 1100);
    g.ignored = 40;
    g.bias = true;
    g.scale = 0.4;
    let p = Prob::random(g, 77);
    for red in REDUCTIONS {
        let go = go_for(red, p.n, 5);
        let got = cce(&l, &p, red, Some(&go));
        let (want, _, _) = reference(&p, opt_of(&[]), red, Some(&go));
        check(&format!("auto tiles {red:?}"), &got, &want, true, GRAD_TOL);
    }
}

#[test]
fn odd_shapes() {
    use ParamValue::I64;
    let ctx = Context::cpu();
    let shapes = [
        (1, 4, 13),  // N = 1
        (6, 1, 9),   // D = 1
        (5, 3, 1),   // V = 1: the only entry is every target
        (7, 5, 13),  // V not a multiple of the tile
        (9, 2, 517), // V just over the automatic tile
        (16, 3, 32), // V and N exact multiples of the tile
    ];
    for (n, d, v) in shapes {
        for tiles in [
            vec![],
            vec![("block_rows", I64(4)), ("block_vocab", I64(4))],
        ] {
            let l = loss_with(&ctx, &tiles);
            let mut g = Gen::new(n, d, v);
            g.bias = true;
            g.ignored = n / 3;
            let p = Prob::random(g, (n * 100 + d * 10 + v) as u64);
            for red in REDUCTIONS {
                let got = cce(&l, &p, red, None);
                let (want, _, _) = reference(&p, opt_of(&[]), red, None);
                check(
                    &format!("N={n} D={d} V={v} {tiles:?} {red:?}"),
                    &got,
                    &want,
                    true,
                    GRAD_TOL,
                );
            }
        }
    }
}

#[test]
fn all_rows_ignored_and_empty_batch_give_zero() {
    let ctx = Context::cpu();
    let l = loss_with(&ctx, &[("z_loss_coef", ParamValue::F64(0.1))]);
    for n in [0usize, 5] {
        let mut g = Gen::new(n, 3, 7);
        g.bias = true;
        g.ignored = n;
        let p = Prob::random(g, 3);
        assert!(p.t.iter().all(|&t| t == -100));
        for red in REDUCTIONS {
            let go = go_for(red, n, 1);
            let o = cce(&l, &p, red, Some(&go));
            assert!(
                o.loss.iter().all(|&x| x == 0.0),
                "N={n} {red:?}: {:?}",
                o.loss
            );
            assert!(o.lse.iter().all(|&x| x == 0.0));
            assert!(o.de.iter().all(|&x| x == 0.0));
            assert!(o.dc.iter().all(|&x| x == 0.0), "N={n} {red:?}: dc not zero");
            assert!(o.db.as_ref().unwrap().iter().all(|&x| x == 0.0));
        }
    }
}

#[test]
fn bias_is_the_last_column_of_an_augmented_classifier() {
    // e·c_v + b_v = [e, 1]·[c_v, b_v]: the loss must match, and dbias must be the last
    // column of the augmented classifier's gradient.
    let ctx = Context::cpu();
    for params in option_sets() {
        let l = loss_with(&ctx, &params);
        let o = opt_of(&params);
        let mut g = Gen::new(11, 4, 23);
        g.bias = true;
        g.ignored = 2;
        g.ignore_index = o.ignore;
        let p = Prob::random(g, 21);
        let d1 = p.d + 1;
        let mut aug = p.clone();
        aug.d = d1;
        aug.bias = None;
        aug.e = (0..p.n)
            .flat_map(|i| p.e[i * p.d..(i + 1) * p.d].iter().cloned().chain([1.0]))
            .collect();
        let b = p.bias.as_ref().unwrap();
        aug.c = (0..p.v)
            .flat_map(|v| p.c[v * p.d..(v + 1) * p.d].iter().cloned().chain([b[v]]))
            .collect();
        for red in REDUCTIONS {
            let with_bias = cce(&l, &p, red, None);
            let augmented = cce(&l, &aug, red, None);
            let as64 = |x: &[f32]| x.iter().map(|&y| y as f64).collect::<Vec<_>>();
            let label = format!("{params:?} {red:?}");
            assert_close(
                &format!("{label}: loss"),
                &with_bias.loss,
                &as64(&augmented.loss),
                1e-6,
            );
            let last: Vec<f64> = (0..p.v)
                .map(|v| augmented.dc[v * d1 + p.d] as f64)
                .collect();
            assert_close(
                &format!("{label}: dbias"),
                with_bias.db.as_ref().unwrap(),
                &last,
                1e-6,
            );
            let dc_head: Vec<f64> = (0..p.v)
                .flat_map(|v| augmented.dc[v * d1..v * d1 + p.d].iter().map(|&x| x as f64))
                .collect();
            assert_close(&format!("{label}: dc"), &with_bias.dc, &dc_head, 1e-6);
        }
    }
}

#[test]
fn absent_bias_equals_zero_bias_exactly_and_bias_gradients_sum_to_zero() {
    let ctx = Context::cpu();
    let l = loss_with(&ctx, &[("block_vocab", ParamValue::I64(6))]);
    let mut g = Gen::new(9, 5, 20);
    g.ignored = 2;
    let p = Prob::random(g, 8);
    let mut zb = p.clone();
    zb.bias = Some(vec![0.0; p.v]);
    for red in REDUCTIONS {
        let a = cce(&l, &p, red, None);
        let b = cce(&l, &zb, red, None);
        assert_eq!(a.loss, b.loss);
        assert_eq!(a.de, b.de);
        assert_eq!(a.dc, b.dc);
        // Without z-loss, sum_v G_iv = w_i (sum_v p_iv - 1) = 0 for every row.
        let s: f64 = b.db.unwrap().iter().map(|&x| x as f64).sum();
        assert!(s.abs() < 1e-5, "{red:?}: sum of dbias = {s}");
    }
    // A constant added to every bias changes nothing without z-loss.
    let mut gb = Gen::new(9, 5, 20);
    gb.bias = true;
    let p = Prob::random(gb, 9);
    let mut shifted = p.clone();
    for b in shifted.bias.as_mut().unwrap() {
        *b += 3.0;
    }
    let a = cce(&l, &p, Reduction::Sum, None);
    let b = cce(&l, &shifted, Reduction::Sum, None);
    let as64 = |x: &[f32]| x.iter().map(|&y| y as f64).collect::<Vec<_>>();
    assert_close("shifted bias: loss", &b.loss, &as64(&a.loss), 1e-6);
    assert_close(
        "shifted bias: dbias",
        b.db.as_ref().unwrap(),
        &as64(a.db.as_ref().unwrap()),
        1e-6,
    );
}

#[test]
fn bias_gradient_alone_equals_bias_gradient_with_the_others() {
    let ctx = Context::cpu();
    let l = loss_with(&ctx, &[("softcap", ParamValue::F64(4.0))]);
    let mut g = Gen::new(8, 3, 15);
    g.bias = true;
    g.ignored = 2;
    let p = Prob::random(g, 12);
    let all = cce(&l, &p, Reduction::Mean, None);
    let mut loss = [0.0f32];
    let mut db = vec![0.0f32; p.v];
    {
        let mut cm = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::f32(&p.e, &[p.n, p.d]))
            .input(Tensor::f32(&p.c, &[p.v, p.d]))
            .input(Tensor::i64(&p.t, &[p.n]))
            .input(Tensor::f32(p.bias.as_ref().unwrap(), &[p.v]))
            .grad(3, TensorMut::new(&mut db, &[p.v]));
        l.compute(&mut cm).unwrap();
    }
    assert_eq!(loss[0], all.loss[0]);
    assert_eq!(&db, all.db.as_ref().unwrap());
}

#[test]
fn gradients_match_finite_differences_with_bias_and_weights() {
    use ParamValue::{F64, I64};
    let ctx = Context::cpu();
    let sets: Vec<Vec<(&str, ParamValue)>> = vec![
        vec![],
        vec![("softcap", F64(2.0)), ("block_vocab", I64(3))],
        vec![("z_loss_coef", F64(0.05)), ("block_rows", I64(2))],
        vec![
            ("normalizer", F64(4.0)),
            ("softcap", F64(6.0)),
            ("z_loss_coef", F64(0.01)),
        ],
    ];
    let mut dims = BTreeMap::new();
    dims.insert("N".to_string(), 7usize);
    dims.insert("D".to_string(), 4usize);
    dims.insert("V".to_string(), 10usize);
    for set in sets {
        let l = loss_with(&ctx, &set);
        for red in REDUCTIONS {
            let case = Case::random(&l, &dims, 31, true);
            assert!(case.inputs[3].is_some(), "bias present");
            for r in gradcheck(&l, &case, red, 60).unwrap() {
                assert!(
                    r.max_abs <= FD_TOL || r.max_rel <= FD_TOL,
                    "{set:?} {red:?}: d/d{} max abs {:.2e} rel {:.2e}",
                    r.input,
                    r.max_abs,
                    r.max_rel
                );
            }
        }
    }
}

#[test]
fn strided_inputs_and_outputs_equal_contiguous_bit_for_bit() {
    let ctx = Context::cpu();
    let l = loss_with(&ctx, &[("block_vocab", ParamValue::I64(4))]);
    let mut g = Gen::new(6, 3, 11);
    g.bias = true;
    g.ignored = 1;
    let p = Prob::random(g, 4);
    let want = cce(&l, &p, Reduction::Sum, None);
    let pad = |x: &[f32], rows: usize, d: usize, rs: usize| -> Vec<f32> {
        let mut o = vec![99.0f32; (rows - 1) * rs + d];
        for i in 0..rows {
            o[i * rs..i * rs + d].copy_from_slice(&x[i * d..(i + 1) * d]);
        }
        o
    };
    let (ers, crs, ders, dcrs) = (5, 7, 4, 6);
    let e = pad(&p.e, p.n, p.d, ers);
    let c = pad(&p.c, p.v, p.d, crs);
    let mut de = vec![-7.0f32; (p.n - 1) * ders + p.d];
    let mut dc = vec![-7.0f32; (p.v - 1) * dcrs + p.d];
    let mut db = vec![0.0f32; p.v];
    let mut loss = [0.0f32];
    {
        let mut cm = Compute::new(Reduction::Sum, &mut loss)
            .input(Tensor::f32(&e, &[p.n, p.d]).with_row_stride(ers))
            .input(Tensor::f32(&c, &[p.v, p.d]).with_row_stride(crs))
            .input(Tensor::i64(&p.t, &[p.n]))
            .input(Tensor::f32(p.bias.as_ref().unwrap(), &[p.v]))
            .grad(
                0,
                TensorMut::new(&mut de, &[p.n, p.d]).with_row_stride(ders),
            )
            .grad(
                1,
                TensorMut::new(&mut dc, &[p.v, p.d]).with_row_stride(dcrs),
            )
            .grad(3, TensorMut::new(&mut db, &[p.v]));
        l.compute(&mut cm).unwrap();
    }
    assert_eq!(loss[0], want.loss[0]);
    for i in 0..p.n {
        assert_eq!(
            &de[i * ders..i * ders + p.d],
            &want.de[i * p.d..(i + 1) * p.d]
        );
        if i + 1 < p.n {
            assert!(
                de[i * ders + p.d..(i + 1) * ders]
                    .iter()
                    .all(|&x| x == -7.0)
            );
        }
    }
    for v in 0..p.v {
        assert_eq!(
            &dc[v * dcrs..v * dcrs + p.d],
            &want.dc[v * p.d..(v + 1) * p.d]
        );
        if v + 1 < p.v {
            assert!(
                dc[v * dcrs + p.d..(v + 1) * dcrs]
                    .iter()
                    .all(|&x| x == -7.0)
            );
        }
    }
    assert_eq!(&db, want.db.as_ref().unwrap());
}

/// A problem whose rows are confidently predicted (targets mostly the arg-max), so that many
/// tiles fall under a filtering threshold, as in a trained language model.
fn peaked_problem(seed: u64, bias: bool) -> Prob {
    let mut g = Gen::new(48, 6, 150);
    g.scale = 1.6;
    g.bias = bias;
    g.ignored = 5;
    g.sw = true;
    let mut p = Prob::random(g, seed);
    let a = logits64(&p);
    let mut r = Rng::new(seed + 1);
    for i in 0..p.n {
        if p.t[i] == -100 || r.below(4) == 0 {
            continue;
        }
        let row = &a[i * p.v..(i + 1) * p.v];
        let best = (0..p.v).max_by(|&x, &y| row[x].total_cmp(&row[y])).unwrap();
        p.t[i] = best as i64;
    }
    p
}

/// `|got - exact| <= bound + GRAD_TOL (1 + |exact|)` everywhere; returns the largest
/// deviation beyond the f32 rounding allowance (how much filtering dropped).
fn within_bound(what: &str, got: &[f32], exact: &[f64], bound: &[f64]) -> f64 {
    let mut dropped = 0.0f64;
    for k in 0..got.len() {
        let dev = (got[k] as f64 - exact[k]).abs();
        let allow = GRAD_TOL * (1.0 + exact[k].abs());
        assert!(
            dev <= bound[k] + allow,
            "{what}[{k}]: |{} - {}| = {dev:.3e} exceeds the bound {:.3e} (+{allow:.1e})",
            got[k],
            exact[k],
            bound[k]
        );
        dropped = dropped.max(dev - allow);
    }
    dropped
}

/// Per-row bound factor of a dropped entry: `ε|w|` without z-loss, else the larger of the
/// non-target and target bounds.
fn drop_bound(eps: f64, lam: f64, w: f64, lse: f64) -> f64 {
    w.abs() * (eps * (1.0 + 2.0 * lam * lse).abs()).max(eps + 2.0 * lam * lse.abs())
}

#[test]
fn filtering_stays_within_its_error_bound() {
    use ParamValue::{Bool, F64, I64};
    let ctx = Context::cpu();
    let eps = 0.02;
    for (lam, sort, fe, fc, bias) in [
        (0.0, true, true, true, true),
        (0.0, false, true, true, false),
        (0.02, true, true, true, true),
        (0.0, true, false, true, true),
        (0.0, true, true, false, true),
    ] {
        let p = peaked_problem(40 + sort as u64, bias);
        let tiles = [("block_rows", I64(4)), ("block_vocab", I64(8))];
        let mut params = vec![
            ("filter_eps", F64(eps)),
            ("z_loss_coef", F64(lam)),
            ("sort_vocab", Bool(sort)),
            ("filter_e_grad", Bool(fe)),
            ("filter_c_grad", Bool(fc)),
        ];
        params.extend(tiles);
        let label = format!("lambda={lam} sort={sort} filter_e={fe} filter_c={fc}");
        let filtered = cce(&loss_with(&ctx, &params), &p, Reduction::Mean, None);
        params[0].1 = F64(0.0);
        let unfiltered = cce(&loss_with(&ctx, &params), &p, Reduction::Mean, None);
        let o = Opt {
            ignore: -100,
            lam,
            ..Opt::default()
        };
        let (exact, _, _) = reference(&p, o, Reduction::Mean, None);
        // The loss and lse never depend on filtering.
        assert_eq!(filtered.loss, unfiltered.loss, "{label}");
        assert_eq!(filtered.lse, unfiltered.lse, "{label}");
        // Off, the result is exact to rounding.
        check(
            &format!("{label}: eps = 0"),
            &unfiltered,
            &exact,
            bias,
            GRAD_TOL,
        );

        let w = row_weights(&p, o, Reduction::Mean, None);
        let bw: Vec<f64> = (0..p.n)
            .map(|i| drop_bound(eps, lam, w[i], exact.lse[i]))
            .collect();
        let zero = |len: usize| vec![0.0f64; len];
        let de_bound: Vec<f64> = if fe {
            (0..p.n * p.d)
                .map(|k| {
                    let (i, dd) = (k / p.d, k % p.d);
                    bw[i]
                        * (0..p.v)
                            .map(|v| (p.c[v * p.d + dd] as f64).abs())
                            .sum::<f64>()
                })
                .collect()
        } else {
            zero(p.n * p.d)
        };
        let dc_bound: Vec<f64> = if fc {
            (0..p.v * p.d)
                .map(|k| {
                    let dd = k % p.d;
                    (0..p.n)
                        .map(|i| bw[i] * (p.e[i * p.d + dd] as f64).abs())
                        .sum::<f64>()
                })
                .collect()
        } else {
            zero(p.v * p.d)
        };
        let dropped_e = within_bound(&format!("{label}: de"), &filtered.de, &exact.de, &de_bound);
        let dropped_c = within_bound(&format!("{label}: dc"), &filtered.dc, &exact.dc, &dc_bound);
        if bias {
            let db_bound: Vec<f64> = if fe && fc {
                vec![bw.iter().sum::<f64>(); p.v]
            } else {
                zero(p.v)
            };
            within_bound(
                &format!("{label}: dbias"),
                filtered.db.as_ref().unwrap(),
                &exact.db,
                &db_bound,
            );
        }
        // Filtering really dropped something where it was allowed to.
        if fe {
            assert!(
                dropped_e > 1e-5,
                "{label}: nothing measurable dropped from de"
            );
        }
        if fc {
            assert!(
                dropped_c > 1e-5,
                "{label}: nothing measurable dropped from dc"
            );
        }
    }
}

#[test]
fn tiny_filter_eps_keeps_gradients_exact_to_rounding() {
    use ParamValue::F64;
    let ctx = Context::cpu();
    let p = peaked_problem(5, true);
    let l = loss_with(&ctx, &[("filter_eps", F64(1.0 / (1u64 << 28) as f64))]);
    let (exact, _, _) = reference(&p, opt_of(&[]), Reduction::Sum, None);
    check(
        "eps = 2^-28",
        &cce(&l, &p, Reduction::Sum, None),
        &exact,
        true,
        GRAD_TOL,
    );
}

#[test]
fn same_bits_for_any_thread_count() {
    use ParamValue::{F64, I64};
    let ctx = Context::cpu();
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let configs: Vec<Vec<(&str, ParamValue)>> = vec![
        vec![],
        vec![("softcap", F64(5.0)), ("z_loss_coef", F64(1e-3))],
        vec![
            ("filter_eps", F64(0.01)),
            ("block_rows", I64(8)),
            ("block_vocab", I64(16)),
        ],
    ];
    let mut g = Gen::new(301, 37, 1030);
    g.bias = true;
    g.sw = true;
    g.ignored = 30;
    let p = Prob::random(g, 99);
    for params in configs {
        let l = loss_with(&ctx, &params);
        let one = pool(1).install(|| cce(&l, &p, Reduction::Mean, None));
        for n in [2, 3, 5] {
            let many = pool(n).install(|| cce(&l, &p, Reduction::Mean, None));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one.loss), bits(&many.loss), "{params:?}: {n} threads");
            assert_eq!(bits(&one.lse), bits(&many.lse), "{params:?}: {n} threads");
            assert_eq!(bits(&one.de), bits(&many.de), "{params:?}: {n} threads");
            assert_eq!(bits(&one.dc), bits(&many.dc), "{params:?}: {n} threads");
            assert_eq!(
                bits(one.db.as_ref().unwrap()),
                bits(many.db.as_ref().unwrap()),
                "{params:?}: {n} threads"
            );
        }
    }
}

#[test]
fn bad_inputs_and_parameters_are_refused() {
    use ParamValue::F64;
    let ctx = Context::cpu();
    let mut l = ctx.loss(ID).unwrap();
    for (k, v) in [
        ("filter_eps", 1.0),
        ("filter_eps", -0.1),
        ("softcap", -1.0),
        ("z_loss_coef", -0.5),
        ("normalizer", -1.0),
    ] {
        let e = l.set(k, F64(v)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParam, "{k} = {v}");
    }
    let e = l.set_i64("block_rows", -1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidParam);

    let mut g = Gen::new(4, 3, 5);
    g.bias = true;
    g.sw = true;
    let p = Prob::random(g, 2);
    for (bad, kind) in [
        (5i64, ErrorKind::InvalidTarget),
        (-1, ErrorKind::InvalidTarget),
    ] {
        let mut q = p.clone();
        q.t[2] = bad;
        let e = try_cce(&l, &q, Reduction::Mean, None).unwrap_err();
        assert_eq!(e.kind, kind, "target {bad}");
        assert!(e.msg.contains("target[2]"), "{}", e.msg);
    }
    let mut q = p.clone();
    q.sw.as_mut().unwrap()[1] = -1.0;
    let e = try_cce(&l, &q, Reduction::Mean, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.msg.contains("sample_weight[1]"), "{}", e.msg);

    // c with another D, and a bias of the wrong length.
    let mut loss = [0.0f32];
    let c_bad = vec![0.0f32; p.v * (p.d + 1)];
    let mut cm = Compute::new(Reduction::Mean, &mut loss)
        .input(Tensor::f32(&p.e, &[p.n, p.d]))
        .input(Tensor::f32(&c_bad, &[p.v, p.d + 1]))
        .input(Tensor::i64(&p.t, &[p.n]));
    assert_eq!(
        l.compute(&mut cm).unwrap_err().kind,
        ErrorKind::ShapeMismatch
    );
    let b_bad = vec![0.0f32; p.v + 1];
    let mut cm = Compute::new(Reduction::Mean, &mut loss)
        .input(Tensor::f32(&p.e, &[p.n, p.d]))
        .input(Tensor::f32(&p.c, &[p.v, p.d]))
        .input(Tensor::i64(&p.t, &[p.n]))
        .input(Tensor::f32(&b_bad, &[p.v + 1]));
    assert_eq!(
        l.compute(&mut cm).unwrap_err().kind,
        ErrorKind::ShapeMismatch
    );
}

#[test]
fn case_generator_builds_valid_inputs_for_the_spec() {
    // The generic suites rely on Case::random: targets index the vocabulary (letter V).
    let ctx = Context::cpu();
    let l = ctx.loss(ID).unwrap();
    let mut dims = BTreeMap::new();
    dims.insert("V".to_string(), 3usize);
    dims.insert("N".to_string(), 50usize);
    let case = Case::random(&l, &dims, 1, true);
    let Some(OwnedTensor {
        data: OwnedData::I64(t),
        ..
    }) = &case.inputs[2]
    else {
        panic!("targets missing")
    };
    assert!(t.iter().all(|&x| x == -100 || (0..3).contains(&x)));
    assert!(t.contains(&2));
}
