//! Shared pieces of the `cut_cross_entropy` tests (CPU: `tests/losses/lm`, GPU:
//! `tests/gpu_cce.rs`): a random problem, the outputs of one call, and the call itself.
#![allow(dead_code)]

use losskit::testing::Rng;
use losskit::{Compute, Context, Loss, ParamValue, Reduction, Tensor, TensorMut};

/// The loss id.
pub const ID: &str = "cut_cross_entropy";
/// Every reduction.
pub const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

/// One problem: embeddings `e [n,d]`, classifier `c [v,d]`, targets, optional bias and
/// per-row weights.
#[derive(Clone, Debug)]
pub struct Prob {
    pub n: usize,
    pub d: usize,
    pub v: usize,
    pub e: Vec<f32>,
    pub c: Vec<f32>,
    pub t: Vec<i64>,
    pub bias: Option<Vec<f32>>,
    pub sw: Option<Vec<f32>>,
}

/// How to draw a [`Prob`]: `ignored` rows get `ignore_index`; `scale` multiplies e and c.
#[derive(Clone, Copy)]
pub struct Gen {
    pub n: usize,
    pub d: usize,
    pub v: usize,
    pub ignored: usize,
    pub ignore_index: i64,
    pub bias: bool,
    pub sw: bool,
    pub scale: f64,
}

impl Gen {
    /// No ignored rows, no bias, no weights, unit scale.
    pub fn new(n: usize, d: usize, v: usize) -> Self {
        Gen {
            n,
            d,
            v,
            ignored: 0,
            ignore_index: -100,
            bias: false,
            sw: false,
            scale: 1.0,
        }
    }
}

impl Prob {
    /// A random problem drawn as `g` says.
    pub fn random(g: Gen, seed: u64) -> Prob {
        let mut r = Rng::new(seed);
        let mut nrm =
            |k: usize, s: f64| -> Vec<f32> { (0..k).map(|_| (r.normal() * s) as f32).collect() };
        let e = nrm(g.n * g.d, g.scale);
        let c = nrm(g.v * g.d, g.scale);
        let bias = g.bias.then(|| nrm(g.v, 1.0));
        let mut r = Rng::new(seed ^ 0xABCD);
        let mut t: Vec<i64> = (0..g.n).map(|_| r.below(g.v as u64) as i64).collect();
        let mut k = 0;
        while k < g.ignored.min(g.n) {
            let i = r.below(g.n as u64) as usize;
            if t[i] != g.ignore_index {
                t[i] = g.ignore_index;
                k += 1;
            }
        }
        let sw =
            g.sw.then(|| (0..g.n).map(|_| (2.0 * r.uniform()) as f32).collect());
        Prob {
            n: g.n,
            d: g.d,
            v: g.v,
            e,
            c,
            t,
            bias,
            sw,
        }
    }
}

/// What one call produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Out {
    pub loss: Vec<f32>,
    pub de: Vec<f32>,
    pub dc: Vec<f32>,
    pub db: Option<Vec<f32>>,
    pub lse: Vec<f32>,
}

/// Length of the loss output.
pub fn out_len(red: Reduction, n: usize) -> usize {
    if red == Reduction::None { n } else { 1 }
}

/// The loss on `ctx` with `params` set.
pub fn loss_with(ctx: &Context, params: &[(&str, ParamValue)]) -> Loss {
    let mut l = ctx.loss(ID).unwrap();
    for (k, v) in params {
        l.set(k, *v).unwrap();
    }
    l
}

/// One call with host tensors, asking for every gradient and the `lse` output.
pub fn try_run(l: &Loss, p: &Prob, red: Reduction, go: Option<&[f32]>) -> losskit::Result<Out> {
    let mut o = Out {
        loss: vec![f32::NAN; out_len(red, p.n)],
        de: vec![f32::NAN; p.n * p.d],
        dc: vec![f32::NAN; p.v * p.d],
        db: p.bias.as_ref().map(|_| vec![f32::NAN; p.v]),
        lse: vec![f32::NAN; p.n],
    };
    {
        let mut cm = Compute::new(red, &mut o.loss)
            .input(Tensor::f32(&p.e, &[p.n, p.d]))
            .input(Tensor::f32(&p.c, &[p.v, p.d]))
            .input(Tensor::i64(&p.t, &[p.n]));
        cm = match &p.bias {
            Some(b) => cm.input(Tensor::f32(b, &[p.v])),
            None => cm.absent(),
        };
        cm = match &p.sw {
            Some(w) => cm.input(Tensor::f32(w, &[p.n])),
            None => cm.absent(),
        };
        cm = cm
            .grad(0, TensorMut::new(&mut o.de, &[p.n, p.d]))
            .grad(1, TensorMut::new(&mut o.dc, &[p.v, p.d]))
            .aux("lse", TensorMut::new(&mut o.lse, &[p.n]));
        if let Some(db) = o.db.as_mut() {
            cm = cm.grad(3, TensorMut::new(db, &[p.v]));
        }
        if let Some(g) = go {
            cm = cm.grad_output(g);
        }
        l.compute(&mut cm)?;
    }
    Ok(o)
}

/// [`try_run`], which must succeed.
pub fn run(l: &Loss, p: &Prob, red: Reduction, go: Option<&[f32]>) -> Out {
    try_run(l, p, red, go).unwrap()
}
