//! Preference-optimisation family: sequence log-probabilities of chosen / rejected responses
//! (`[B]` pairs, `[N]` unpaired, `[N,K]` lists) in, one loss per pair or row out.
//!
//! - [`token_logprobs`] is the primitive: it turns logits `[N,T,V]` into the per-token and
//!   per-sequence log-probabilities (and entropy, KL to a reference) the other losses consume,
//!   and carries their gradients back to the logits. It is where almost all of the cost is.
//! - Every other loss is one row function on a shared driver of [`crate::exec::pairs`]:
//!   [`run_pairwise`](crate::exec::pairs::run_pairwise) for the pairwise losses (a scalar
//!   function of one pair returning its loss and the two derivatives, the
//!   `preference_loss_fn` pattern of Liger's fused preference losses),
//!   [`run_rows`](crate::exec::pairs::run_rows) for rows holding several values (`[N,K]`,
//!   `[N,T]`, `sparsepo`'s `[2, B, T]`), [`finish_batch`](crate::exec::pairs::finish_batch)
//!   for `aot`, whose terms couple rows through a sort. The drivers read and check the
//!   inputs, run the rows in parallel, reduce and write the outputs.
//! - This module holds what only the family uses: the spec helpers [`policy_inputs`],
//!   [`ref_inputs`], [`len_inputs`], and the family's WGSL helpers [`FAMILY_WGSL`].
//! - `dpo`'s twelve loss types are twelve small functions in one table (see `dpo.rs`).
//!
//! # GPU path
//!
//! Each per-sample loss of the family declares its kernel on its definition,
//! `GpuKernel::Sample(SampleKernel::new(&[FAMILY_WGSL], include_str!("<id>.wgsl")))`: one
//! invocation per pair or row of the per-sample contract writes the unscaled loss and its
//! derivatives; the executor applies the reduction, the upstream gradient and the chunking.
//! Its `LossImpl::plan` runs the checks its CPU path relies on
//! ([`check_pairs`](crate::exec::pairs::check_pairs),
//! [`read_pairs`](crate::exec::pairs::read_pairs) and the loss's own value checks) before
//! either backend runs, reading device values back, and may return the `mean` denominator
//! (`yojo_nway`: the rows not ignored). `family.wgsl` holds the margin loss and the AlphaPO
//! reward of `simpo`/`cpo`; the shared math (softplus, σ, log σ, `log1p`, `log(1 − e^a)`) is
//! the losskit prelude's, and parameters, inputs and letters are read through the names
//! generated from the spec ([`crate::kernel_names`]).
//!
//! `aot`, `token_logprobs`, `grad_entanglement` and `rso_accept` declare custom GPU
//! implementations (their own passes or kernel builders; see their module docs).
//!
//! Names shared by the family: `pc, pr` = policy log-probs of chosen / rejected, `rc,
//! rr` = reference log-probs, `lr_w = pc − rc`, `lr_l = pr − rr`; only policy-side inputs are
//! differentiable; NaN / ±inf inputs are not checked and propagate.
//!
//! # Switching from the Python trainers
//!
//! `dpo` `loss_type` and the equivalent settings of the common trainers (TRL `DPOTrainer`
//! `loss_type`, `beta`, `label_smoothing`, `f_divergence_type`, `f_alpha_divergence_coef`,
//! `use_weighting`):
//!
//! | losskit `dpo` | TRL `DPOTrainer` | notes |
//! |---|---|---|
//! | `sigmoid` | `sigmoid` | `label_smoothing` = cDPO (TRL ≤ 0.2x; TRL main dropped it, ε = 0 is identical); RSO "sigmoid-norm" |
//! | `hinge` | `hinge` | RSO "hinge-norm" with reference inputs, SLiC hinge without them |
//! | `ipo` | `ipo` | TRL main divides by the completion lengths: pass `chosen_len`/`rejected_len`; the IPO paper does not: omit them |
//! | `exo_pair` | `exo_pair` | needs `label_smoothing > 0` (old TRL silently used 1e-3) |
//! | `nca_pair` | `nca_pair` | |
//! | `robust` | `robust` | `label_smoothing` = flip rate ε < 0.5 |
//! | `bco_pair` | `bco_pair` | TRL ≤ 0.2x running reward mean = `bco_delta` (TRL main: 0) |
//! | `sppo_hard` | `sppo_hard` | |
//! | `apo_zero`, `apo_down` | `apo_zero`, `apo_down` | |
//! | `discopop` | `discopop` | `discopop_tau` |
//! | `sigmoid_norm` | `sigmoid_norm` | Tülu 3 length-normalised DPO |
//! | `f_divergence` | `f_divergence_type` | `f_alpha` = α; TRL main's `f_alpha_divergence_coef` a = 1 − α (both 0.5 by default), TRL ≤ 0.2x used α |
//! | `pair_weight` input | `use_weighting=True` (WPO) | weights from `token_logprobs` (`token_logps`, `log_collision`); `mean` divides by B |
//! | `aot` id, `variant` | `aot` (paired), `aot_unpaired` | |
//! | `rpo` id | `rpo_alpha` / `loss_type=["sigmoid","sft"]` | `sft_norm=token_mean` matches TRL's token-mean NLL when chosen lengths are equal |
//! | `token_logprobs` + `rpo` | `sft` | |
//!
//! Other trainers: `orpo` = TRL `ORPOTrainer` (`lam` = its `beta`, official code's `alpha`);
//! `simpo` = TRL `CPOTrainer(loss_type="simpo")` / princeton-nlp SimPO (`gamma_beta_ratio`,
//! `alpha` = AlphaPO); `cpo` = TRL `CPOTrainer` `sigmoid|hinge|ipo` with `cpo_alpha`; `kto` = TRL
//! `KTOTrainer` `kto|apo_zero_unpaired` (KL estimate from `kl_logps`/`kl_ref_logps`);
//! `sparsepo` = the SparsePO code's `sparse` trainer (`mask_mode`; its `mapo` trainer is
//! `sparsepo_mask` + `sparsepo` with `mask_mode=common`; `token_kl` comes from
//! `token_logprobs` with `ref_logits`); `solireward_btwt` = the SoliReward training script
//! (`margin` 3, its BCE scalar spread over the rows); `hypo` = DPO plus an RLOO-trained KL
//! term (`lam`, K online samples per prompt); `rso_accept` = RSO's sampling step, followed by
//! `dpo` (`sigmoid`, or `hinge` with/without the reference inputs).
//!
//! RL aggregation (`ppo_clip`, `grpo`, `steer`, family `rl`):
//!
//! | losskit `loss_agg` (with `mean`) | TRL `GRPOTrainer` `loss_type` | verl `loss_agg_mode` |
//! |---|---|---|
//! | `token_mean` | `bnpo` / `dapo` | `token-mean` |
//! | `seq_mean_token_mean` | `grpo` | `seq-mean-token-mean` |
//! | `seq_mean_token_sum` | — | `seq-mean-token-sum` |
//! | `seq_mean_token_sum_norm` (`max_len`) | `dr_grpo` (`max_completion_length`) | `seq-mean-token-sum-norm` |
//!
//! TRL main defaults to `dapo` and `beta = 0`; losskit's `grpo` defaults are the paper's
//! (`seq_mean_token_mean`, β = 0.04). TRL's `scale_rewards` (`group|batch|none`) and
//! `epsilon`/`epsilon_high` map to `scale_rewards`, `epsilon_low`, `epsilon_high`.

pub mod aot;
pub mod cpo;
pub mod dpa_semantic;
pub mod dpo;
pub mod grad_entanglement;
pub mod hypo;
pub mod inpo;
pub mod kto;
pub mod mapl;
pub mod orpo;
pub mod osp_spce;
pub mod rpo;
pub mod rso_accept;
pub mod seppo;
pub mod simpo;
pub mod solireward_btwt;
pub mod sparsepo;
pub mod sparsepo_mask;
pub mod spo_degree;
pub mod token_logprobs;
pub mod yojo_nway;

use crate::spec::{Domain, InputSpec, LossSpec};

/// The family's WGSL helpers (`pf_margin_loss`, `pf_alpha_reward`, `pf_len`, `pf_step`),
/// placed in front of every preference kernel after the losskit prelude.
pub const FAMILY_WGSL: &str = include_str!("family.wgsl");

/// `policy_chosen_logps`, `policy_rejected_logps` `[B]`, differentiable log-probs.
pub fn policy_inputs(spec: LossSpec) -> LossSpec {
    spec.input(
        InputSpec::f32("policy_chosen_logps", "B")
            .grad()
            .domain(Domain::LogProb)
            .doc("policy log-prob of the chosen response (summed over its tokens)"),
    )
    .input(
        InputSpec::f32("policy_rejected_logps", "B")
            .grad()
            .domain(Domain::LogProb)
            .doc("policy log-prob of the rejected response (summed over its tokens)"),
    )
}

/// `ref_chosen_logps`, `ref_rejected_logps` `[B]` (constants).
pub fn ref_inputs(spec: LossSpec, optional: bool) -> LossSpec {
    let mk = |name: &str, doc: &str| {
        let i = InputSpec::f32(name, "B").domain(Domain::LogProb).doc(doc);
        if optional { i.optional() } else { i }
    };
    spec.input(mk(
        "ref_chosen_logps",
        if optional {
            "reference log-prob of the chosen response (absent = 0, reference-free)"
        } else {
            "reference log-prob of the chosen response"
        },
    ))
    .input(mk(
        "ref_rejected_logps",
        if optional {
            "reference log-prob of the rejected response (absent = 0, reference-free)"
        } else {
            "reference log-prob of the rejected response"
        },
    ))
}

/// `chosen_len`, `rejected_len` `[B]` token counts (f32; `max(len, 1)` is used).
pub fn len_inputs(spec: LossSpec, optional: bool) -> LossSpec {
    let mk = |name: &str, doc: &str| {
        let i = InputSpec::f32(name, "B").domain(Domain::Positive).doc(doc);
        if optional { i.optional() } else { i }
    };
    spec.input(mk(
        "chosen_len",
        "token count of the chosen response (>= 0; max(len, 1) is used)",
    ))
    .input(mk(
        "rejected_len",
        "token count of the rejected response (>= 0; max(len, 1) is used)",
    ))
}
