//! `dpa_semantic`: the two-variable semantic-loss family of direct preference alignment
//! (Understanding the Logic of Direct Preference Alignment through Logic).
//!
//! **Inputs** (`[B]`): `policy_chosen_logps`, `policy_rejected_logps` (differentiable);
//! `ref_chosen_logps`, `ref_rejected_logps` (optional, both or neither, absent = 0; used by
//! `link = ratio`); `chosen_len`, `rejected_len` (optional token counts, `L = max(len, 1)`,
//! absent = 1; used by `link = odds`).
//!
//! **Parameters**: `core` (4, `[0, 15]`) and `cond` (6, `[1, 15]`): 4-bit world masks, with
//! `core & cond ≠ 0`; `link` (`ratio|odds`); `beta` β (0.1, `(0, ∞)`, ratio link only).
//!
//! **Math**: two Boolean propositions M_w (“y_w is a good answer”) and M_l with probabilities
//! `σ(z_w)`, `σ(z_l)`: ratio `z = β(logps − ref)`; odds `z = a − log(1 − e^a)`, `a =
//! logps/L` (the log-odds of the average token probability, as in ORPO; the reference inputs
//! are not used). World `k = 2b_w + b_l` (0 neither, 1 only l, 2 only w, 3 both) has
//! `ω_k = log σ(±z_w) + log σ(±z_l)` (+ for a true variable). A formula is a set of worlds;
//! `ℓ = LSE_{k∈cond} ω_k − LSE_{k∈core∩cond} ω_k = −log P(core | cond)`. Gradient: with `q^D`,
//! `q^N` the softmax of ω over cond and over core∩cond, and `g_w(k) = σ(−z_w)` if `b_w = 1`
//! else `−σ(z_w)` (same for l), `∂ℓ/∂z_w = Σ_k (q^D_k − q^N_k) g_w(k)`; `∂z/∂logps = β`
//! (ratio) or `−1/(L·expm1(a))` (odds).
//!
//! | formula | core | cond | equals |
//! |---|---|---|---|
//! | M_w ∧ ¬M_l given exactly one | 4 | 6 | DPO (ratio), ORPO's odds-ratio term (odds) |
//! | M_w | 12 | 15 | cross-entropy / SFT on y_w (ratio: `−log σ(z_w)`) |
//! | M_w ∧ ¬M_l | 4 | 15 | likelihood + unlikelihood |
//! | M_l → M_w | 13 | 15 | implication loss |
//! | M_w given M_w ∨ M_l | 12 | 14 | conditioned variant |
//!
//! `core ⊇ cond` gives ℓ ≡ 0 (valid). `core ∩ cond = ∅` is an invalid parameter combination;
//! an odds-link average log-prob `a ≥ 0` is an invalid input.
//!
//! **Source**: *Understanding the Logic of Direct Preference Alignment through Logic*. With one
//! chosen and one rejected response there are exactly 2⁴ formulas, so the family is
//! parametrised by two world masks. The mapping of the paper's named variants to masks beyond
//! the DPO/ORPO and cross-entropy rows is the spec's reading (confidence medium), kept as
//! specified.
//!
//! **GPU path**: `dpa_semantic.wgsl`, one invocation per pair under the per-sample kernel
//! contract (the four worlds in registers, max-shifted log-sum-exps over the masks), after
//! the CPU path's checks (for the odds link the average log-probs are read back).

use super::{len_inputs, policy_inputs, ref_inputs};
use crate::backend::cpu::{log_sigmoid, log1mexp, lse, sigmoid};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{Pair, PairIdx, PairOut, run_pairwise};
use crate::params::{
    ParamSpec,
    ParamValue::{Enum, F64, I64},
    Params,
};
use crate::spec::LossSpec;

const ID: &str = "dpa_semantic";

/// The registry entry.
pub fn def() -> LossDef {
    let spec = LossSpec::new(
        ID,
        "preference",
        "Semantic loss -log P(core | cond) over the four worlds of two preference propositions (DPA logic family)",
        "Understanding the Logic of Direct Preference Alignment through Logic",
    )
    .rows("B");
    let spec = len_inputs(ref_inputs(policy_inputs(spec), true), true)
        .param(ParamSpec::i64(
            "core",
            4,
            0,
            15,
            "core formula as a 4-bit world mask (bit k = world k = 2 b_w + b_l)",
        ))
        .param(ParamSpec::i64(
            "cond",
            6,
            1,
            15,
            "conditioning constraint as a 4-bit world mask (must intersect core)",
        ))
        .param(ParamSpec::choice(
            "link",
            "ratio",
            &["ratio", "odds"],
            "proposition logits: beta (logps - ref) or the log-odds of the average token probability",
        ))
        .param(super::dpo::beta_param(0.1));
    LossDef::new(spec, DpaSemantic)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("dpa_semantic.wgsl"),
        )))
        .test_params(&[("beta", F64(0.7))])
        .test_params(&[("cond", I64(15)), ("core", I64(12)), ("beta", F64(0.5))])
        .test_params(&[("cond", I64(15)), ("core", I64(4)), ("beta", F64(0.5))])
        .test_params(&[("cond", I64(15)), ("core", I64(13)), ("beta", F64(0.5))])
        .test_params(&[("cond", I64(14)), ("core", I64(12)), ("beta", F64(0.5))])
        .test_params(&[("link", Enum(1))])
        .test_params(&[("link", Enum(1)), ("cond", I64(15)), ("core", I64(13))])
}

/// The implementation.
pub struct DpaSemantic;

const IDX: PairIdx = PairIdx::new(0, 1).refs(2, 3).lens(Some(4), Some(5));

/// The odds link needs negative average log-probs (chosen, then rejected).
fn check_odds(q: &Pair) -> Result<()> {
    for (name, lp, len) in [
        ("policy_chosen_logps", q.pc, q.lw),
        ("policy_rejected_logps", q.pr, q.ll),
    ] {
        let a = lp / len;
        if a >= 0.0 {
            bail!(
                InvalidInput,
                "{ID}: {name}[{}] / length = {a} is not a negative average log-prob (odds link)",
                q.i
            );
        }
    }
    Ok(())
}

/// `ℓ` and `(∂ℓ/∂z_w, ∂ℓ/∂z_l)` for world masks `core`, `cond`.
pub fn semantic(zw: f64, zl: f64, core: u32, cond: u32) -> (f64, f64, f64) {
    let num = core & cond;
    let omega: [f64; 4] = std::array::from_fn(|k| {
        let side = |b: bool, z: f64| log_sigmoid(if b { z } else { -z });
        side(k & 2 != 0, zw) + side(k & 1 != 0, zl)
    });
    let pick = |mask: u32| -> [f64; 4] {
        std::array::from_fn(|k| {
            if mask >> k & 1 == 1 {
                omega[k]
            } else {
                f64::NEG_INFINITY
            }
        })
    };
    let (wd, wn) = (pick(cond), pick(num));
    let (ld, ln) = (lse(&wd), lse(&wn));
    let dz = |b: bool, z: f64| if b { sigmoid(-z) } else { -sigmoid(z) };
    let (mut gw, mut gl) = (0.0, 0.0);
    for k in 0..4 {
        let q = (wd[k] - ld).exp() - (wn[k] - ln).exp();
        gw += q * dz(k & 2 != 0, zw);
        gl += q * dz(k & 1 != 0, zl);
    }
    (ld - ln, gw, gl)
}

impl LossImpl for DpaSemantic {
    fn plan(&self, s: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        if p.choice("link") != "odds" {
            crate::exec::pairs::check_pairs(s, c, IDX)?;
        } else {
            let v = crate::exec::pairs::read_pairs(s, c, IDX)?;
            (0..v.data.rows).try_for_each(|i| check_odds(&v.pair(i)))?;
        }
        Ok(Plan::default())
    }
    fn check_params(&self, _spec: &LossSpec, p: &Params) -> Result<()> {
        let (core, cond) = (p.i64("core"), p.i64("cond"));
        if core & cond == 0 {
            bail!(
                InvalidParam,
                "{ID}: core = {core} and cond = {cond} share no world (core & cond = 0); set cond first"
            );
        }
        Ok(())
    }

    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let (core, cond) = (p.i64("core") as u32, p.i64("cond") as u32);
        let beta = p.f64("beta");
        let odds = p.choice("link") == "odds";
        run_pairwise(spec, c, IDX, |q| {
            if odds {
                check_odds(q)?;
            }
            // (z, dz/dlogps) of one response.
            let link = |lp: f64, rf: f64, len: f64| -> (f64, f64) {
                if !odds {
                    return (beta * (lp - rf), beta);
                }
                let a = lp / len;
                (a - log1mexp(a), -1.0 / (len * a.exp_m1()))
            };
            let (zw, jw) = link(q.pc, q.rc, q.lw);
            let (zl, jl) = link(q.pr, q.rr, q.ll);
            let (loss, gw, gl) = semantic(zw, zl, core, cond);
            Ok(PairOut {
                loss,
                d_pc: gw * jw,
                d_pr: gl * jl,
            })
        })?;
        Ok(())
    }
}
