//! `dpo`: Direct Preference Optimization and its loss types (TRL `DPOTrainer`), conservative
//! DPO, robust DPO, f-DPO and the RSO / SLiC hinge.
//!
//! **Inputs** (`[B]` pairs, f32): `policy_chosen_logps`, `policy_rejected_logps`
//! (differentiable, summed token log-probs, e.g. `token_logprobs`'s `seq_logps`);
//! `ref_chosen_logps`, `ref_rejected_logps` (optional, both or neither; absent = 0, the
//! reference-free form); `chosen_len`, `rejected_len` (optional token counts, `L = max(len,
//! 1)`, absent = 1; used by `ipo` and `sigmoid_norm`); `pair_weight` (optional, 1: WPO
//! weights; `mean` still divides by `B`, as TRL).
//!
//! **Parameters**: `loss_type` (below, `sigmoid`), `beta` β (0.1, `(0, ∞)`), `label_smoothing`
//! ε (0, `[0, 1)`; used by `sigmoid`, `robust` (needs ε < 0.5), `exo_pair` (needs ε > 0),
//! ignored by the others), `f_divergence` (`reverse_kl|forward_kl|js_divergence|
//! alpha_divergence`), `f_alpha` α (0.5, `(0, 1)`), `discopop_tau` τ (0.05, `(0, ∞)`),
//! `bco_delta` δ (0, any finite).
//!
//! **Math.** Scores `s = φ(lr)` with `φ = r`, `−e^{−r}`, `log σ(r)` or `−e^{min(−αr, 80)}/α`;
//! `Δ = s_w − s_l`, `x = βΔ`, `Δ_n = s_w/L_w − s_l/L_l`. Per pair:
//! `sigmoid` `(1−ε)softplus(−x) + ε softplus(x)`; `hinge` `relu(1 − x)`; `ipo`
//! `(Δ_n − 1/(2β))²`; `exo_pair` `σ(x)(log σ(x) − log(1−ε)) + σ(−x)(log σ(−x) − log ε)`;
//! `nca_pair` `softplus(−βs_w) + ½softplus(βs_w) + ½softplus(βs_l)`; `robust`
//! `[(1−ε)softplus(−x) − ε softplus(x)]/(1−2ε)`; `bco_pair` `softplus(δ − βs_w) +
//! softplus(βs_l − δ)`; `sppo_hard` `(s_w − 1/(2β))² + (s_l + 1/(2β))²`; `apo_zero`
//! `1 − σ(β lr_w) + σ(β lr_l)`; `apo_down` `σ(β lr_w) + 1 − σ(x)`; `discopop` `(1−μ)
//! softplus(−x) + μe^{−x}`, `μ = σ(x/τ)`; `sigmoid_norm` `softplus(−βΔ_n)`; then times
//! `pair_weight`. Each type is one function returning `ℓ`, `∂ℓ/∂s_w`, `∂ℓ/∂s_l` and the direct
//! `∂ℓ/∂lr` of the `apo` terms; the chain through `φ'` is shared.
//!
//! **Sources**: *Direct Preference Optimization: Your Language Model is Secretly a Reward
//! Model*; TRL `DPOTrainer` (huggingface/trl); conservative DPO (label smoothing); *Provably
//! Robust DPO* (`robust`, the unbiased `((1−ε)ℓ(w,l) − εℓ(l,w))/(1−2ε)`); *Beyond Reverse KL*
//! (f-DPO, with the paper's α and TRL's constant-free scores and f32 clamp at 80);
//! *Statistical Rejection Sampling Improves Preference Optimization* (sigmoid-norm, hinge-norm,
//! SLiC hinge); IPO (TRL main's length division iff lengths are given), EXO, NCA, BCO (the
//! running mean δ supplied by the caller), SPPO, APO, DiscoPOP, Tülu 3 length-normalised DPO.
//! TRL main removed label smoothing from `sigmoid`; conservative DPO and older TRL keep it, and
//! ε = 0 is identical, so it is kept.
//!
//! **GPU path**: `dpo.wgsl`, one invocation per pair under the per-sample kernel contract;
//! the loss type and the f-divergence arrive as choice indices and select a case of a
//! switch, so all twelve types (and the four scores) are one pipeline. The f32 forms are the
//! stable ones of the family prelude. Exponents are clamped (no inf inside a kernel):
//! `alpha_divergence` at 80 like the CPU; `forward_kl`'s `e^{−r}` and DiscoPOP's
//! `e^{log σ(x/τ) − x}` at 88, which only matters where the CPU's f32 result is already
//! near or past the f32 range (log-ratios below −88).

use super::{len_inputs, policy_inputs, ref_inputs};
use crate::backend::cpu::{log_sigmoid, sigmoid, softplus};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, run_pairwise};
use crate::params::{ParamSpec, ParamValue, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

/// What a loss type sees of one pair.
#[derive(Clone, Copy, Debug)]
pub struct Scores {
    /// `s_w = φ(lr_w)`.
    pub sw: f64,
    /// `s_l = φ(lr_l)`.
    pub sl: f64,
    /// Raw log-ratio `lr_w` (for the single-response `apo` terms).
    pub lrw: f64,
    /// Raw log-ratio `lr_l`.
    pub lrl: f64,
    /// Chosen length (≥ 1).
    pub lw: f64,
    /// Rejected length (≥ 1).
    pub ll: f64,
}

/// Parameters a loss type may use.
#[derive(Clone, Copy, Debug)]
pub struct Knobs {
    /// β.
    pub beta: f64,
    /// ε (label smoothing / flip rate).
    pub eps: f64,
    /// DiscoPOP τ.
    pub tau: f64,
    /// BCO δ.
    pub delta: f64,
}

/// `ℓ`, `G_w = ∂ℓ/∂s_w`, `G_l = ∂ℓ/∂s_l`, `D_w = ∂ℓ/∂lr_w`, `D_l = ∂ℓ/∂lr_l` (direct terms).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Terms {
    /// Loss.
    pub loss: f64,
    /// `∂ℓ/∂s_w`.
    pub gw: f64,
    /// `∂ℓ/∂s_l`.
    pub gl: f64,
    /// Direct `∂ℓ/∂lr_w`.
    pub dw: f64,
    /// Direct `∂ℓ/∂lr_l`.
    pub dl: f64,
}

/// A loss type: scores and knobs to the loss and its derivatives.
pub type LossTypeFn = fn(&Scores, &Knobs) -> Terms;

/// Loss of the margin `x = βΔ` with `dℓ/dx`, turned into score derivatives.
fn on_margin(s: &Scores, k: &Knobs, f: impl Fn(f64) -> (f64, f64)) -> Terms {
    let (loss, g) = f(k.beta * (s.sw - s.sl));
    Terms {
        loss,
        gw: k.beta * g,
        gl: -k.beta * g,
        ..Terms::default()
    }
}

fn sigmoid_type(s: &Scores, k: &Knobs) -> Terms {
    let e = k.eps;
    on_margin(s, k, |x| {
        (
            (1.0 - e) * softplus(-x) + e * softplus(x),
            -(1.0 - e) * sigmoid(-x) + e * sigmoid(x),
        )
    })
}

fn hinge(s: &Scores, k: &Knobs) -> Terms {
    on_margin(s, k, |x| {
        ((1.0 - x).max(0.0), if x < 1.0 { -1.0 } else { 0.0 })
    })
}

fn ipo(s: &Scores, k: &Knobs) -> Terms {
    let d = s.sw / s.lw - s.sl / s.ll - 1.0 / (2.0 * k.beta);
    Terms {
        loss: d * d,
        gw: 2.0 * d / s.lw,
        gl: -2.0 * d / s.ll,
        ..Terms::default()
    }
}

fn exo_pair(s: &Scores, k: &Knobs) -> Terms {
    let e = k.eps;
    on_margin(s, k, |x| {
        let (p, q) = (sigmoid(x), sigmoid(-x));
        let loss = p * (log_sigmoid(x) - (-e).ln_1p()) + q * (log_sigmoid(-x) - e.ln());
        (loss, p * q * (x - ((1.0 - e) / e).ln()))
    })
}

fn nca_pair(s: &Scores, k: &Knobs) -> Terms {
    let (a, b) = (k.beta * s.sw, k.beta * s.sl);
    Terms {
        loss: softplus(-a) + 0.5 * softplus(a) + 0.5 * softplus(b),
        gw: k.beta * (-sigmoid(-a) + 0.5 * sigmoid(a)),
        gl: 0.5 * k.beta * sigmoid(b),
        ..Terms::default()
    }
}

fn robust(s: &Scores, k: &Knobs) -> Terms {
    let e = k.eps;
    on_margin(s, k, |x| {
        (
            ((1.0 - e) * softplus(-x) - e * softplus(x)) / (1.0 - 2.0 * e),
            (-(1.0 - e) * sigmoid(-x) - e * sigmoid(x)) / (1.0 - 2.0 * e),
        )
    })
}

fn bco_pair(s: &Scores, k: &Knobs) -> Terms {
    let (a, b) = (k.beta * s.sw - k.delta, k.beta * s.sl - k.delta);
    Terms {
        loss: softplus(-a) + softplus(b),
        gw: -k.beta * sigmoid(-a),
        gl: k.beta * sigmoid(b),
        ..Terms::default()
    }
}

fn sppo_hard(s: &Scores, k: &Knobs) -> Terms {
    let h = 1.0 / (2.0 * k.beta);
    let (a, b) = (s.sw - h, s.sl + h);
    Terms {
        loss: a * a + b * b,
        gw: 2.0 * a,
        gl: 2.0 * b,
        ..Terms::default()
    }
}

/// `σ(βr)` and its derivative in `r`.
fn sig_beta(beta: f64, r: f64) -> (f64, f64) {
    let p = sigmoid(beta * r);
    (p, beta * p * sigmoid(-beta * r))
}

fn apo_zero(s: &Scores, k: &Knobs) -> Terms {
    let (pw, dw) = sig_beta(k.beta, s.lrw);
    let (pl, dl) = sig_beta(k.beta, s.lrl);
    Terms {
        loss: 1.0 - pw + pl,
        dw: -dw,
        dl,
        ..Terms::default()
    }
}

fn apo_down(s: &Scores, k: &Knobs) -> Terms {
    let (pw, dw) = sig_beta(k.beta, s.lrw);
    let mut t = on_margin(s, k, |x| {
        let p = sigmoid(x);
        (1.0 - p, -p * sigmoid(-x))
    });
    t.loss += pw;
    t.dw = dw;
    t
}

fn discopop(s: &Scores, k: &Knobs) -> Terms {
    let tau = k.tau;
    on_margin(s, k, |x| {
        let mu = sigmoid(x / tau);
        let e = (log_sigmoid(x / tau) - x).exp();
        let loss = (1.0 - mu) * softplus(-x) + e;
        let g = -(mu * (1.0 - mu) / tau) * softplus(-x) - (1.0 - mu) * sigmoid(-x)
            + e * ((1.0 - mu) / tau - 1.0);
        (loss, g)
    })
}

fn sigmoid_norm(s: &Scores, k: &Knobs) -> Terms {
    let x = k.beta * (s.sw / s.lw - s.sl / s.ll);
    let g = -k.beta * sigmoid(-x);
    Terms {
        loss: softplus(-x),
        gw: g / s.lw,
        gl: -g / s.ll,
        ..Terms::default()
    }
}

/// Every loss type, in the order of the `loss_type` choices.
pub const LOSS_TYPES: &[(&str, LossTypeFn)] = &[
    ("sigmoid", sigmoid_type),
    ("hinge", hinge),
    ("ipo", ipo),
    ("exo_pair", exo_pair),
    ("nca_pair", nca_pair),
    ("robust", robust),
    ("bco_pair", bco_pair),
    ("sppo_hard", sppo_hard),
    ("apo_zero", apo_zero),
    ("apo_down", apo_down),
    ("discopop", discopop),
    ("sigmoid_norm", sigmoid_norm),
];

/// The f-divergence choices.
pub const F_DIVERGENCES: &[&str] = &[
    "reverse_kl",
    "forward_kl",
    "js_divergence",
    "alpha_divergence",
];

/// `φ(r)` and `φ'(r)` of an f-divergence (index into [`F_DIVERGENCES`]).
pub fn phi(f: usize, alpha: f64, r: f64) -> (f64, f64) {
    match f {
        1 => {
            let e = (-r).exp();
            (-e, e)
        }
        2 => (log_sigmoid(r), sigmoid(-r)),
        3 => {
            let t = -alpha * r;
            let e = t.min(80.0).exp();
            (-e / alpha, if t < 80.0 { e } else { 0.0 })
        }
        _ => (r, 1.0),
    }
}

/// The registry entry.
pub fn def() -> LossDef {
    let names: Vec<&str> = LOSS_TYPES.iter().map(|t| t.0).collect();
    let spec = LossSpec::new(
        "dpo",
        "preference",
        "DPO family: TRL loss types, conservative/robust DPO, f-DPO, RSO/SLiC hinge",
        "Direct Preference Optimization (Rafailov et al.); TRL DPOTrainer (huggingface/trl); Provably Robust DPO; Beyond Reverse KL (f-DPO); Statistical Rejection Sampling Improves Preference Optimization",
    )
    .rows("B");
    let spec = ref_inputs(policy_inputs(spec), true);
    let spec = len_inputs(spec, true)
        .input(
            InputSpec::f32("pair_weight", "B")
                .optional()
                .domain(Domain::NonNegative)
                .doc("per-pair weight (WPO; default 1); mean still divides by B"),
        )
        .param(ParamSpec::choice(
            "loss_type",
            "sigmoid",
            &names,
            "the TRL DPOTrainer loss type",
        ))
        .param(beta_param(0.1))
        .param(
            ParamSpec::f64(
                "label_smoothing",
                0.0,
                0.0,
                1.0,
                "epsilon: cDPO smoothing (sigmoid), flip rate (robust, < 0.5), EXO (exo_pair, > 0)",
            )
            .open_max(),
        )
        .param(ParamSpec::choice(
            "f_divergence",
            "reverse_kl",
            F_DIVERGENCES,
            "f-DPO divergence (score phi of the log-ratio)",
        ))
        .param(
            ParamSpec::f64_open_min("f_alpha", 0.5, 0.0, 1.0, "alpha of alpha_divergence")
                .open_max(),
        )
        .param(
            ParamSpec::f64_open_min(
                "discopop_tau",
                0.05,
                0.0,
                f64::INFINITY,
                "DiscoPOP temperature",
            )
            .open_max(),
        )
        .param(ParamSpec::f64(
            "bco_delta",
            0.0,
            f64::NEG_INFINITY,
            f64::INFINITY,
            "BCO reward shift (a running mean of the rewards, supplied by the caller)",
        ));
    let mut d = LossDef::new(spec, Dpo).gpu(GpuKernel::Sample(SampleKernel::new(
        &[super::FAMILY_WGSL],
        include_str!("dpo.wgsl"),
    )));
    use ParamValue::{Enum, F64};
    for (k, (name, _)) in LOSS_TYPES.iter().enumerate() {
        match *name {
            "sigmoid" => {
                d = d.test_params(&[("label_smoothing", F64(0.2)), ("beta", F64(0.5))]);
            }
            "exo_pair" => {
                d = d.test_params(&[("label_smoothing", F64(0.1)), ("loss_type", Enum(k))]);
                d = d.test_params(&[
                    ("label_smoothing", F64(0.3)),
                    ("loss_type", Enum(k)),
                    ("beta", F64(0.7)),
                ]);
            }
            "robust" => {
                d = d.test_params(&[("label_smoothing", F64(0.2)), ("loss_type", Enum(k))]);
            }
            "discopop" => {
                d = d.test_params(&[("loss_type", Enum(k)), ("beta", F64(0.2))]);
                d = d.test_params(&[
                    ("loss_type", Enum(k)),
                    ("beta", F64(0.5)),
                    ("discopop_tau", F64(0.5)),
                ]);
            }
            "bco_pair" => {
                d = d.test_params(&[("loss_type", Enum(k)), ("bco_delta", F64(0.05))]);
            }
            _ => {
                d = d.test_params(&[("loss_type", Enum(k)), ("beta", F64(0.5))]);
            }
        }
    }
    for f in 1..F_DIVERGENCES.len() {
        d = d.test_params(&[("f_divergence", Enum(f)), ("beta", F64(0.5))]);
    }
    d.test_params(&[
        ("f_divergence", Enum(3)),
        ("f_alpha", F64(0.3)),
        ("loss_type", Enum(4)),
    ])
}

/// The usual `beta` parameter (`(0, ∞)`).
pub fn beta_param(default: f64) -> ParamSpec {
    ParamSpec::f64_open_min(
        "beta",
        default,
        0.0,
        f64::INFINITY,
        "inverse temperature of the implicit reward",
    )
    .open_max()
}

/// The implementation.
pub struct Dpo;

const IDX: PairIdx = PairIdx::new(0, 1)
    .refs(2, 3)
    .lens(Some(4), Some(5))
    .weight(6);

fn loss_type_index(p: &Params) -> usize {
    match p.get("loss_type") {
        Some(ParamValue::Enum(k)) => k,
        _ => 0,
    }
}

fn f_index(p: &Params) -> usize {
    match p.get("f_divergence") {
        Some(ParamValue::Enum(k)) => k,
        _ => 0,
    }
}

impl LossImpl for Dpo {
    fn plan(&self, s: &LossSpec, _p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (crate::exec::pairs::check_pairs(s, c, IDX).map(drop))?;
        Ok(Plan::default())
    }
    fn check_params(&self, _spec: &LossSpec, p: &Params) -> Result<()> {
        let eps = p.f64("label_smoothing");
        match p.choice("loss_type") {
            "robust" if eps >= 0.5 => bail!(
                InvalidParam,
                "dpo: loss_type robust needs label_smoothing < 0.5, got {eps}"
            ),
            "exo_pair" if eps <= 0.0 => bail!(
                InvalidParam,
                "dpo: loss_type exo_pair needs label_smoothing > 0 (set it before the loss type)"
            ),
            _ => Ok(()),
        }
    }

    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let f = LOSS_TYPES[loss_type_index(p)].1;
        let (fdiv, alpha) = (f_index(p), p.f64("f_alpha"));
        let k = Knobs {
            beta: p.f64("beta"),
            eps: p.f64("label_smoothing"),
            tau: p.f64("discopop_tau"),
            delta: p.f64("bco_delta"),
        };
        run_pairwise(spec, c, IDX, |pair| {
            let (lrw, lrl) = (pair.lr_w(), pair.lr_l());
            let (sw, dsw) = phi(fdiv, alpha, lrw);
            let (sl, dsl) = phi(fdiv, alpha, lrl);
            let s = Scores {
                sw,
                sl,
                lrw,
                lrl,
                lw: pair.lw,
                ll: pair.ll,
            };
            let t = f(&s, &k);
            Ok(PairOut {
                loss: t.loss,
                d_pc: t.gw * dsw + t.dw,
                d_pr: t.gl * dsl + t.dl,
            })
        })?;
        Ok(())
    }
}
