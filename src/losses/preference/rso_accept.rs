//! `rso_accept`: the statistical rejection sampling of RSO, choosing m of K candidates per
//! prompt so that they follow `π* ∝ π_sft·exp(r/β)` (a selection, no gradient).
//!
//! **Inputs**: `rewards [N,K]` (K candidates sampled from π_sft per prompt), `uniforms
//! [N,K,K]` (uniform draws in `[0, 1)`, indexed round × candidate), `valid [N,K]` (optional
//! 0/1: padding for prompts with fewer candidates; absent = all valid). Nothing is
//! differentiable.
//!
//! **Parameters**: `beta` β (0.5, `(0, ∞)`: the target is `π_sft·exp(r/β)`), `num_samples` m
//! (8, `[1, K]`; K is known at compute, a larger m is then an invalid parameter).
//!
//! **Procedure**: rounds j = 0, 1, …: M = the largest reward among the remaining candidates;
//! visit the remaining candidates in index order and accept k iff `uniforms[n,j,k] <
//! exp((r_k − M)/β)`; remove the accepted ones; stop as soon as m are accepted. The arg-max
//! candidate is always accepted, so at most K rounds are needed.
//!
//! **Outputs**: the auxiliary output `accepted [N,K]` holds the accepted candidate indices in
//! acceptance order in its first m columns and −1 in the others (the spec's `[N,m]` i64
//! output, carried in the registry's f32 auxiliary form, whose sizes come from the input
//! letters); `rso_accept_prob [N,K]` is `exp((r − M)/β)` with M over the valid candidates
//! (0 for invalid ones). The per-prompt value (the `none` output, reduced by `mean`/`sum`
//! over N) is the mean reward of the accepted candidates. Fewer than m valid candidates, a
//! uniform outside `[0, 1)` or a `valid` value other than 0/1 is an invalid input.
//!
//! **Source**: *Statistical Rejection Sampling Improves Preference Optimization* (its
//! rejection-sampling procedure): follows the paper's Python listing (the maximum is
//! recomputed over the remaining candidates in every round; candidates are visited in
//! insertion order). The paper's losses are `dpo` (`sigmoid`, `hinge` with or without the
//! reference).
//!
//! **No GPU kernel** (on a WGPU context it runs this CPU path): the draws are the caller's
//! `uniforms` (no generator inside), and the same picks on both backends would need the test
//! `u < exp((r − M)/β)` evaluated as the CPU does, in f64. WGSL has no f64 `exp`, and the
//! f32 one (error up to a few ulp, growing with |x|) flips a pick whenever `u` lies within
//! about 1e-6 of the threshold; an extended-precision exponential in WGSL would be needed
//! (compensated f32 tricks are not reliable there: compilers may reassociate them away).

use super::{check_values, input_f64, required_f64, run_rows};
use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{
    ParamSpec,
    ParamValue::{F64, I64},
    Params,
};
use crate::registry::{AuxSpec, Domain, InputSpec, LossDef, LossImpl, LossSpec};

const ID: &str = "rso_accept";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "RSO statistical rejection sampling: pick m of K candidates per prompt to follow pi_sft exp(r / beta) (no gradient)",
        "Statistical Rejection Sampling Improves Preference Optimization",
    )
    .rows("N")
    .input(InputSpec::f32("rewards", "N,K").doc("reward of each candidate response"))
    .input(
        InputSpec::f32("uniforms", "N,K,K")
            .domain(Domain::Unit)
            .doc("uniform draws in [0, 1), indexed [prompt, round, candidate]"),
    )
    .input(
        InputSpec::f32("valid", "N,K")
            .optional()
            .domain(Domain::Binary)
            .doc("1 for a real candidate, 0 for padding (default all 1)"),
    )
    .param(
        ParamSpec::f64_open_min(
            "beta",
            0.5,
            0.0,
            f64::INFINITY,
            "temperature of the target pi_sft exp(r / beta)",
        )
        .open_max(),
    )
    .param(ParamSpec::i64(
        "num_samples",
        8,
        1,
        i64::MAX,
        "m: candidates to accept per prompt (at most K)",
    ))
    .aux(AuxSpec::new(
        "accepted",
        "N,K",
        "accepted candidate indices in acceptance order (first m columns), -1 after",
    ))
    .aux(AuxSpec::new(
        "rso_accept_prob",
        "N,K",
        "acceptance probability exp((r - max r) / beta) over the valid candidates, 0 if invalid",
    ));
    LossDef::new(spec, RsoAccept)
        .test_dims(&[("K", 10)])
        .test_omit(&["valid"])
        .test_params(&[("beta", F64(0.1)), ("num_samples", I64(3))])
        .test_params(&[("beta", F64(5.0)), ("num_samples", I64(10))])
}

/// The implementation.
pub struct RsoAccept;

/// Run the procedure on one prompt: accepted indices in order.
pub fn select(r: &[f64], u: &[f64], valid: &[bool], beta: f64, m: usize) -> Vec<usize> {
    let k = r.len();
    let mut left: Vec<usize> = (0..k).filter(|&j| valid[j]).collect();
    let mut out = Vec::with_capacity(m);
    for round in 0..k {
        if out.len() >= m || left.is_empty() {
            break;
        }
        let top = left.iter().map(|&j| r[j]).fold(f64::NEG_INFINITY, f64::max);
        let mut keep = Vec::with_capacity(left.len());
        for &j in &left {
            if out.len() < m && u[round * k + j] < ((r[j] - top) / beta).exp() {
                out.push(j);
            } else {
                keep.push(j);
            }
        }
        left = keep;
    }
    out
}

impl LossImpl for RsoAccept {
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (n, k) = (c.dim("N"), c.dim("K"));
        let beta = p.f64("beta");
        let m = p.i64("num_samples");
        if m as u64 > k as u64 {
            bail!(InvalidParam, "{ID}: num_samples = {m} outside [1, K = {k}]");
        }
        let m = m as usize;
        let r = required_f64(ID, c, 0)?;
        let u = required_f64(ID, c, 1)?;
        check_values(
            ID,
            "uniforms",
            &u,
            |x| (0.0..1.0).contains(&x),
            "is outside [0, 1)",
        )?;
        let valid: Vec<bool> = match input_f64(c, 2) {
            Some(v) => {
                check_values(ID, "valid", &v, |x| x == 0.0 || x == 1.0, "is not 0 or 1")?;
                v.iter().map(|&x| x == 1.0).collect()
            }
            None => vec![true; n * k],
        };
        for i in 0..n {
            let have = valid[i * k..(i + 1) * k].iter().filter(|&&v| v).count();
            if have < m {
                bail!(
                    InvalidInput,
                    "{ID}: prompt {i} has {have} valid candidates, fewer than num_samples = {m}"
                );
            }
        }
        let mut acc = vec![-1.0f64; n * k];
        let mut prob = vec![0.0f64; n * k];
        run_rows(spec, c, n, n as f64, |i, _| {
            let (ri, vi) = (&r[i * k..(i + 1) * k], &valid[i * k..(i + 1) * k]);
            let top = (0..k)
                .filter(|&j| vi[j])
                .map(|j| ri[j])
                .fold(f64::NEG_INFINITY, f64::max);
            for j in (0..k).filter(|&j| vi[j]) {
                prob[i * k + j] = ((ri[j] - top) / beta).exp();
            }
            let sel = select(ri, &u[i * k * k..(i + 1) * k * k], vi, beta, m);
            for (slot, &j) in sel.iter().enumerate() {
                acc[i * k + slot] = j as f64;
            }
            Ok(sel.iter().map(|&j| ri[j]).sum::<f64>() / m as f64)
        })?;
        for (name, src) in [("accepted", &acc), ("rso_accept_prob", &prob)] {
            if let Some(dst) = c.take_aux(name).as_mut() {
                for i in 0..n {
                    for j in 0..k {
                        dst.data[i * dst.row_stride + j] = src[i * k + j] as f32;
                    }
                }
            }
        }
        Ok(())
    }
}
