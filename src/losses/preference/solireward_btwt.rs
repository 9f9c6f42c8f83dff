//! `solireward_btwt`: Bradley-Terry with a margin and wide ties, plus an optional pointwise
//! BCE term (SoliReward reward-model training).
//!
//! **Inputs** (`[B]`): `reward_chosen`, `reward_rejected` (differentiable reward-model
//! scores); `quality_chosen`, `quality_rejected` (optional, both or neither: single-item
//! binary quality labels; a pair is a tie iff its two labels are equal; absent = no ties).
//!
//! **Parameters**: `margin` m (3, `[0, ∞)`), `bt_label_smoothing` ε (0, `[0, 0.5)`),
//! `bt_weight` (1), `tie_weight` (1), `bce_weight` (0), all weights `[0, ∞)`,
//! `bce_label_smoothing` ε_b (0, `[0, 1)`).
//!
//! **Math**: `d = r_w − r_l`. Non-tie `ℓ_bt = (1−ε)softplus(m − d) + ε softplus(m + d)`;
//! tie `ℓ_tie = softplus(m − d) + softplus(m + d)` (a symmetric band of width m around 0);
//! `ℓ = tie ? tie_weight·ℓ_tie : bt_weight·ℓ_bt`; when `bce_weight > 0`, `ℓ +=
//! bce_weight·½(BCE(r_w, y_w) + BCE(r_l, y_l))` with `y = 1[q > 0](1 − ε_b) + ½ε_b` and
//! `BCE(z, y) = softplus(z) − y z`. Gradients: `∂ℓ_bt/∂d = −(1−ε)σ(m−d) + εσ(m+d)`,
//! `∂ℓ_tie/∂d = −σ(m−d) + σ(m+d)`, `∂ℓ/∂r_w = w ∂/∂d + bce_weight·½(σ(r_w) − y_w)`,
//! `∂ℓ/∂r_l = −w ∂/∂d + bce_weight·½(σ(r_l) − y_l)`. `bce_weight > 0` without the quality
//! labels is an invalid parameter combination.
//!
//! **Source**: *SoliReward: Mitigating Susceptibility to Reward Hacking and Annotation Noise
//! in Video Generation Reward Models* (official lian700/SoliReward). The official code adds
//! one BCE scalar (the mean over the 2B scores) to every row; the per-row ½(BCE_w + BCE_l)
//! used here has the same mean. The default margin 3 is the released training script's value
//! (its config class defaults to 0).
//!
//! **GPU path**: `solireward_btwt.wgsl`, one invocation per pair under the per-sample kernel
//! contract, after the CPU path's checks.

use crate::backend::cpu::{sigmoid, softplus};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, both_or_neither, run_pairwise, values};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};

const ID: &str = "solireward_btwt";

/// The registry entry.
pub fn def() -> LossDef {
    let r = |name: &str, doc: &str| InputSpec::f32(name, "B").grad().doc(doc);
    let q = |name: &str, doc: &str| {
        InputSpec::f32(name, "B")
            .optional()
            .domain(Domain::Binary)
            .doc(doc)
    };
    let w = |name: &str, default: f64, doc: &str| {
        ParamSpec::f64(name, default, 0.0, f64::INFINITY, doc)
    };
    let spec = LossSpec::new(
        ID,
        "preference",
        "SoliReward: Bradley-Terry with a margin and wide ties for reward models, plus pointwise BCE",
        "SoliReward: Mitigating Susceptibility to Reward Hacking and Annotation Noise in Video Generation Reward Models (official code lian700/SoliReward)",
    )
    .rows("B")
    .input(r("reward_chosen", "reward-model score of the chosen item"))
    .input(r("reward_rejected", "reward-model score of the rejected item"))
    .input(q(
        "quality_chosen",
        "binary quality label of the chosen item (a pair is a tie iff the labels are equal)",
    ))
    .input(q("quality_rejected", "binary quality label of the rejected item"))
    .param(w("margin", 3.0, "margin m of the Bradley-Terry and tie terms"))
    .param(
        ParamSpec::f64(
            "bt_label_smoothing",
            0.0,
            0.0,
            0.5,
            "label smoothing of the Bradley-Terry term",
        )
        .open_max(),
    )
    .param(w("bt_weight", 1.0, "weight of the Bradley-Terry term (non-tie pairs)"))
    .param(w("tie_weight", 1.0, "weight of the tie term (tie pairs)"))
    .param(w(
        "bce_weight",
        0.0,
        "weight of the pointwise BCE term (needs the quality labels)",
    ))
    .param(
        ParamSpec::f64(
            "bce_label_smoothing",
            0.0,
            0.0,
            1.0,
            "label smoothing of the BCE targets",
        )
        .open_max(),
    );
    LossDef::new(spec, SolirewardBtwt)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("solireward_btwt.wgsl"),
        )))
        .test_needs_optional()
        .test_params(&[("margin", F64(0.0)), ("bt_label_smoothing", F64(0.2))])
        .test_params(&[
            ("margin", F64(1.0)),
            ("bt_weight", F64(2.0)),
            ("tie_weight", F64(0.5)),
        ])
        .test_params(&[
            ("bce_weight", F64(0.5)),
            ("bce_label_smoothing", F64(0.1)),
            ("bt_label_smoothing", F64(0.1)),
        ])
}

/// The implementation.
pub struct SolirewardBtwt;

const IDX: PairIdx = PairIdx::new(0, 1);

/// The checks of both backends: quality labels both or neither, `bce_weight > 0` only with
/// them. Returns whether the labels were given.
fn check_labels(p: &Params, c: &Compute<'_>) -> Result<bool> {
    let labels = both_or_neither(ID, c, 2, 3, "quality_chosen and quality_rejected")?;
    let wbce = p.f64("bce_weight");
    if wbce > 0.0 && !labels {
        bail!(
            InvalidParam,
            "{ID}: bce_weight = {wbce} needs the quality_chosen/quality_rejected labels"
        );
    }
    Ok(labels)
}

impl LossImpl for SolirewardBtwt {
    fn plan(&self, s: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        ({
            check_labels(p, c)?;
            crate::exec::pairs::check_pairs(s, c, IDX).map(drop)
        })?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let m = p.f64("margin");
        let eps = p.f64("bt_label_smoothing");
        let (wbt, wtie, wbce) = (p.f64("bt_weight"), p.f64("tie_weight"), p.f64("bce_weight"));
        let eb = p.f64("bce_label_smoothing");
        let quality = if check_labels(p, c)? {
            values(c, 2)?.zip(values(c, 3)?)
        } else {
            None
        };
        let target = |q: f64| if q > 0.0 { 1.0 - eb } else { 0.0 } + 0.5 * eb;
        run_pairwise(spec, c, IDX, |pair| {
            let (rw, rl) = (pair.pc, pair.pr);
            let d = rw - rl;
            let tie = quality
                .as_ref()
                .is_some_and(|(a, b)| a.at(pair.i) == b.at(pair.i));
            let (loss, gd) = if tie {
                (
                    wtie * (softplus(m - d) + softplus(m + d)),
                    wtie * (-sigmoid(m - d) + sigmoid(m + d)),
                )
            } else {
                (
                    wbt * ((1.0 - eps) * softplus(m - d) + eps * softplus(m + d)),
                    wbt * (-(1.0 - eps) * sigmoid(m - d) + eps * sigmoid(m + d)),
                )
            };
            let mut o = PairOut {
                loss,
                d_pc: gd,
                d_pr: -gd,
            };
            if let (true, Some((qa, qb))) = (wbce > 0.0, &quality) {
                let (yw, yl) = (target(qa.at(pair.i)), target(qb.at(pair.i)));
                o.loss += wbce * 0.5 * (softplus(rw) - yw * rw + softplus(rl) - yl * rl);
                o.d_pc += wbce * 0.5 * (sigmoid(rw) - yw);
                o.d_pr += wbce * 0.5 * (sigmoid(rl) - yl);
            }
            Ok(o)
        })?;
        Ok(())
    }
}
