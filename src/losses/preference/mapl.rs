//! `mapl`: level-weighted Bradley-Terry / DPO over original, intra-sample and inter-sample
//! pairs (Multi-Level Aware Preference Learning).
//!
//! **Inputs** (`[B]`): `win_logps`, `lose_logps` (differentiable: log-probs, or reward scores
//! in `rm` mode, of the preferred and dispreferred (prompt, response) items);
//! `ref_win_logps`, `ref_lose_logps` (optional, both or neither; `dpo` mode only, absent = 0);
//! `level` i64 (optional, 0: original pair, 1: intra-sample pair (same response, prompts
//! x_w ≻ x_l), 2: inter-sample pair; absent = 0).
//!
//! **Parameters**: `beta` β (0.1, `(0, ∞)`), `mode` (`dpo|rm`), `w_intra` (1, `[0, ∞)`),
//! `w_inter` (1, `[0, ∞)`).
//!
//! **Math**: `dpo`: `z = β[(s_w − ref_w) − (s_l − ref_l)]` (the response-conditioned BT model
//! for intra pairs); `rm`: `z = s_w − s_l`; `ℓ = w_level·softplus(−z)`, `w = (1, w_intra,
//! w_inter)`; `∂ℓ/∂s_w = −w σ(−z)·(β or 1) = −∂ℓ/∂s_l`. A level outside {0, 1, 2} is an
//! invalid input; reference inputs in `rm` mode are an invalid parameter combination.
//!
//! **Source**: *Multi-Level Aware Preference Learning: Enhancing RLHF for Complex
//! Multi-Instruction Tasks* (no public code found). Both of the paper's objectives are BT/DPO
//! terms on item pairs; what is new is the data. The per-level weights of the paper could not
//! be verified (defaults 1, kept as specified).
//!
//! **GPU path**: `mapl.wgsl`, one invocation per pair under the per-sample kernel contract,
//! after the CPU path's checks (mode against reference inputs, the levels read back).

use crate::backend::cpu::{sigmoid, softplus};
use crate::bail;
use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::def::{LossDef, LossImpl};
use crate::exec::kernel::{GpuKernel, SampleKernel};
use crate::exec::pairs::{PairIdx, PairOut, check_pairs, check_values, run_pairwise};
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::spec::{Domain, InputSpec, LossSpec};
use crate::text::Text;

/// The registry entry.
pub fn def() -> LossDef {
    let lp = |name: &str, doc: &str| InputSpec::f32(name, "B").domain(Domain::LogProb).doc(doc);
    let spec = LossSpec::new(
        "mapl",
        "preference",
        "MAPL: Bradley-Terry / DPO with per-level weights for original, intra- and inter-sample pairs",
        "Multi-Level Aware Preference Learning: Enhancing RLHF for Complex Multi-Instruction Tasks (no public code found)",
    )
    .rows("B")
    .input(lp("win_logps", "log-prob (or reward in rm mode) of the preferred item").grad())
    .input(lp("lose_logps", "log-prob (or reward in rm mode) of the dispreferred item").grad())
    .input(lp("ref_win_logps", "reference log-prob of the preferred item (dpo mode)").optional())
    .input(lp("ref_lose_logps", "reference log-prob of the dispreferred item (dpo mode)").optional())
    .input(
        InputSpec::i64("level", "B")
            .optional()
            .domain(Domain::Class(Text::new("3")))
            .doc("0 original, 1 intra-sample, 2 inter-sample pair (default 0)"),
    )
    .param(super::dpo::beta_param(0.1))
    .param(ParamSpec::choice(
        "mode",
        "dpo",
        &["dpo", "rm"],
        "DPO log-ratio margin or reward-model score margin",
    ))
    .param(ParamSpec::f64("w_intra", 1.0, 0.0, f64::INFINITY, "weight of intra-sample pairs"))
    .param(ParamSpec::f64("w_inter", 1.0, 0.0, f64::INFINITY, "weight of inter-sample pairs"));
    LossDef::new(spec, Mapl)
        .gpu(GpuKernel::Sample(SampleKernel::new(
            &[super::FAMILY_WGSL],
            include_str!("mapl.wgsl"),
        )))
        .test_params(&[
            ("w_intra", F64(0.5)),
            ("w_inter", F64(2.0)),
            ("beta", F64(0.5)),
        ])
        .test_params(&[("w_inter", F64(0.0))])
        .test_params(&[("beta", F64(1.5))])
}

/// The implementation.
pub struct Mapl;

const IDX: PairIdx = PairIdx::new(0, 1).refs(2, 3);

/// The checks of both backends: no reference inputs in `rm` mode, levels in {0, 1, 2}, the
/// pair checks. Returns the levels (0 when absent).
fn checked_levels(spec: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Vec<i64>> {
    if p.choice("mode") == "rm" && (c.get(2).is_some() || c.get(3).is_some()) {
        bail!(
            InvalidParam,
            "mapl: mode rm takes no reference inputs (they are for mode dpo)"
        );
    }
    let b = c.dim("B");
    let level: Vec<i64> = match c.get(4) {
        Some(t) => t.read_i64()?,
        None => vec![0; b],
    };
    let lf: Vec<f64> = level.iter().map(|&l| l as f64).collect();
    check_values(
        "mapl",
        "level",
        &lf,
        |l| l == 0.0 || l == 1.0 || l == 2.0,
        "is not 0, 1 or 2",
    )?;
    check_pairs(spec, c, IDX)?;
    Ok(level)
}

impl LossImpl for Mapl {
    fn plan(&self, s: &LossSpec, p: &Params, c: &Compute<'_>) -> Result<Plan> {
        (checked_levels(s, p, c).map(drop))?;
        Ok(Plan::default())
    }
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let rm = p.choice("mode") == "rm";
        let level = checked_levels(spec, p, c)?;
        let w = [1.0, p.f64("w_intra"), p.f64("w_inter")];
        let k = if rm { 1.0 } else { p.f64("beta") };
        run_pairwise(spec, c, IDX, |q| {
            let wl = w[level[q.i] as usize];
            let z = k * (q.lr_w() - q.lr_l());
            let g = -wl * sigmoid(-z) * k;
            Ok(PairOut {
                loss: wl * softplus(-z),
                d_pc: g,
                d_pr: -g,
            })
        })?;
        Ok(())
    }
}
