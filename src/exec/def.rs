//! A loss definition ([`LossDef`]): its spec, its implementation ([`LossImpl`]) and the
//! declarations the generic test suites read.

use std::fmt;

use crate::compute::{Compute, Plan};
use crate::error::Result;
use crate::exec::kernel::GpuKernel;
use crate::params::{ParamValue, Params};
use crate::spec::LossSpec;

/// What a loss does. The family drivers implement this for builtins; the plugin host
/// implements it over a plugin's C callbacks.
pub trait LossImpl: Send + Sync {
    /// Check a combination of parameters beyond each one's own range: the conditions that
    /// involve several parameters (or a value that the spec's range cannot express). A
    /// setter never calls it, so every configuration is reachable in any order of sets;
    /// `Loss::check` calls it, and `Loss::compute` through it before anything is launched
    /// or written, on either backend. It must depend on `params` only and be cheap (its
    /// success is remembered until the next set). An error is `InvalidParam` and names every
    /// parameter involved, with its value. The default accepts everything.
    fn check_params(&self, _spec: &LossSpec, _params: &Params) -> Result<()> {
        Ok(())
    }
    /// Validate what both backends must refuse alike and build the call's plan (validated
    /// targets and weights, the `mean` denominator, host constants of the kernel). Called
    /// once per compute, after the generic validation against the spec and before either
    /// backend runs; the result is in `c.plan` for both. The default plans a `mean` over
    /// all rows and checks nothing more.
    fn plan(&self, _spec: &LossSpec, _params: &Params, _c: &Compute<'_>) -> Result<Plan> {
        Ok(Plan::default())
    }
    /// Compute on the CPU. The arguments were validated against the spec (inputs present
    /// where required, dtypes, ranks and shape letters consistent, buffers long enough,
    /// gradients only for differentiable inputs, output lengths right) and `c.plan` holds
    /// what [`LossImpl::plan`] returned.
    fn compute_cpu(&self, spec: &LossSpec, params: &Params, c: &mut Compute<'_>) -> Result<()>;
}

/// A stop-gradient surrogate declaration (see [`LossDef::surrogate_gradient`]).
#[derive(Clone, Copy, Debug)]
pub struct Surrogate {
    /// Why the gradient is not the derivative of the value.
    pub why: &'static str,
    /// For which parameter settings.
    pub when: fn(&Params) -> bool,
}

/// A parameter setting used by the generic test suites (and shown as examples).
pub type ParamSet = Vec<(String, ParamValue)>;

/// A generator of an f32 input's values for the generic test suites, from the input's shape
/// and a seed (see [`LossDef::test_values`]).
pub type TestValues = fn(shape: &[usize], seed: u64) -> Vec<f32>;

/// How the `mean` reduction's denominator follows from a call's inputs, declared on a
/// [`LossDef`] so that the generic test suites can recompute it independently of the outputs
/// (`mean == sum / den`, gradients included; `den = 0` gives 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MeanRule {
    /// The rule of the spec conventions: the rows whose `[rows]` class target is not
    /// `ignore_index` (every row when the loss has no such target), each counted with its
    /// class weight `w_{y_i}` when an input named `class_weights` is given. Any other weight
    /// scales the loss only.
    #[default]
    Rows,
    /// [`MeanRule::Rows`], each row also counted with its `sample_weight` `s_i`; a positive
    /// `normalizer` parameter replaces the whole count.
    SampleWeightedRows,
    /// A batch-level loss that returns the same scalar for `mean` and `sum` (`den = 1`).
    Scalar,
}

/// A registered loss: its spec and its implementation.
pub struct LossDef {
    /// The spec.
    pub spec: LossSpec,
    /// The implementation.
    pub imp: Box<dyn LossImpl>,
    /// The GPU kernel, as data: whether and how the loss runs on a GPU.
    pub gpu: GpuKernel,
    /// Parameter settings the generic suites (gradient check, CPU/GPU parity) run besides
    /// the defaults; each should exercise a branch of the math.
    pub test_params: Vec<ParamSet>,
    /// Sizes of shape letters the generic suites must use (e.g. `N` a multiple of a group
    /// size); they override the suites' defaults.
    pub test_dims: Vec<(String, usize)>,
    /// The default parameters need the optional inputs (e.g. a reference model's
    /// log-probabilities): the generic suites then always pass them.
    pub test_needs_optional: bool,
    /// When the gradient is, by design, not the derivative of the returned value (a
    /// stop-gradient, as the source method specifies): why, and for which parameters. The
    /// generic finite-difference suite skips those settings; the loss's own tests check the
    /// gradient where it is a true derivative.
    pub surrogate_gradient: Option<Surrogate>,
    /// Optional inputs the generic suites never pass, because random values cannot make
    /// them valid together with the others (an alternative to another input, padding that
    /// must agree with a target). The loss's own tests cover them.
    pub test_omit: Vec<String>,
    /// f32 inputs whose values the generic suites take from a generator of the loss instead
    /// of drawing them from the input's domain: values the domain allows but at which the loss
    /// is too ill-conditioned for two f32 implementations to agree to the suites' tolerance
    /// (the loss's doc gives the bound); the loss's own tests cover the rest of the domain.
    pub test_values: Vec<(String, TestValues)>,
    /// How `mean` divides (checked by the generic suites against their own count).
    pub mean_rule: MeanRule,
}

impl fmt::Debug for LossDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossDef")
            .field("id", &self.spec.id)
            .finish()
    }
}

impl LossDef {
    /// A definition from a spec and an implementation.
    pub fn new(spec: LossSpec, imp: impl LossImpl + 'static) -> Self {
        LossDef {
            spec,
            imp: Box::new(imp),
            gpu: GpuKernel::None,
            test_params: Vec::new(),
            test_dims: Vec::new(),
            test_needs_optional: false,
            surrogate_gradient: None,
            test_omit: Vec::new(),
            test_values: Vec::new(),
            mean_rule: MeanRule::Rows,
        }
    }
    /// Declare how `mean` divides (see [`MeanRule`]; the default is [`MeanRule::Rows`]).
    pub fn mean_rule(mut self, rule: MeanRule) -> Self {
        self.mean_rule = rule;
        self
    }
    /// Declare the GPU kernel.
    pub fn gpu(mut self, kernel: GpuKernel) -> Self {
        self.gpu = kernel;
        self
    }
    /// Whether the loss has a GPU path (derived from its kernel declaration, the same in
    /// every build).
    pub fn has_gpu(&self) -> bool {
        self.gpu.exists()
    }
    /// The source of the loss's per-sample kernel, as declared (without the preludes); a
    /// plugin's `wgsl_source`.
    pub fn wgsl_source(&self) -> Option<&str> {
        match &self.gpu {
            GpuKernel::Sample(k) => Some(&k.source),
            _ => None,
        }
    }
    /// Fix the size of shape letters in the generic suites, e.g. `&[("N", 12)]`.
    pub fn test_dims(mut self, dims: &[(&str, usize)]) -> Self {
        self.test_dims = dims.iter().map(|(l, n)| (l.to_string(), *n)).collect();
        self
    }
    /// The generic suites always pass the optional inputs (see `test_needs_optional`).
    pub fn test_needs_optional(mut self) -> Self {
        self.test_needs_optional = true;
        self
    }
    /// Declare the gradient a stop-gradient surrogate for every parameter setting.
    pub fn surrogate_gradient(self, why: &'static str) -> Self {
        self.surrogate_gradient_when(why, |_| true)
    }
    /// Declare the gradient a stop-gradient surrogate for the settings where `when` holds.
    pub fn surrogate_gradient_when(mut self, why: &'static str, when: fn(&Params) -> bool) -> Self {
        self.surrogate_gradient = Some(Surrogate { why, when });
        self
    }
    /// Optional inputs the generic suites leave out (see `test_omit`).
    pub fn test_omit(mut self, inputs: &[&str]) -> Self {
        self.test_omit = inputs.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Draw the values of the f32 input `input` in the generic suites from `values` (see
    /// [`LossDef::test_values`]).
    pub fn test_values(mut self, input: &str, values: TestValues) -> Self {
        self.test_values.push((input.to_string(), values));
        self
    }
    /// Why the gradient is a surrogate under `params`, or None when it is the derivative.
    pub fn surrogate_reason(&self, params: &Params) -> Option<&'static str> {
        self.surrogate_gradient
            .as_ref()
            .filter(|s| (s.when)(params))
            .map(|s| s.why)
    }
    /// Add a parameter setting for the generic suites, e.g. `&[("label_smoothing", F64(0.1))]`.
    pub fn test_params(mut self, set: &[(&str, ParamValue)]) -> Self {
        self.test_params
            .push(set.iter().map(|(n, v)| (n.to_string(), *v)).collect());
        self
    }
}
