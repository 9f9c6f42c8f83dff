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
//! **GPU kernel needs**: none (O(B)).

use super::{PairIdx, PairOut, check_values, run_pairwise, sigmoid, softplus};
use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{ParamSpec, ParamValue::F64, Params};
use crate::registry::{Domain, InputSpec, LossDef, LossImpl, LossSpec, Text};

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

impl LossImpl for Mapl {
    fn compute_cpu(&self, spec: &LossSpec, p: &Params, c: &mut Compute<'_>) -> Result<()> {
        let rm = p.choice("mode") == "rm";
        if rm && (c.get(2).is_some() || c.get(3).is_some()) {
            bail!(
                InvalidParam,
                "mapl: mode rm takes no reference inputs (they are for mode dpo)"
            );
        }
        let b = c.dim("B");
        let level: Vec<i64> = c.get(4).map_or(vec![0; b], |t| t.to_i64_vec());
        let lf: Vec<f64> = level.iter().map(|&l| l as f64).collect();
        check_values(
            "mapl",
            "level",
            &lf,
            |l| l == 0.0 || l == 1.0 || l == 2.0,
            "is not 0, 1 or 2",
        )?;
        let w = [1.0, p.f64("w_intra"), p.f64("w_inter")];
        let k = if rm { 1.0 } else { p.f64("beta") };
        let idx = PairIdx {
            pc: 0,
            pr: 1,
            refs: Some((2, 3)),
            ..PairIdx::default()
        };
        run_pairwise(spec, c, idx, |q| {
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
