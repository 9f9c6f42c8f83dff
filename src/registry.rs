//! The loss registry: one [`LossSpec`] per loss, builtins first, then plugins.
//!
//! The C API's introspection, the CLI's `list`/`describe`, the README's loss table, the
//! bindings' generic path and the generic test suites all read this registry.

use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::bail;
use crate::compute::Compute;
use crate::error::Result;
use crate::params::{ParamKind, ParamSpec, ParamValue, Params};
use crate::tensor::DType;

/// An immutable string that is also a valid C string (no interior NUL), so the C API can
/// hand out pointers to it for as long as the spec lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(CString);

impl Text {
    /// Make a text; interior NUL bytes are dropped.
    pub fn new(s: &str) -> Self {
        match CString::new(s) {
            Ok(c) => Text(c),
            Err(_) => Text(CString::new(s.replace('\0', "")).unwrap_or_default()),
        }
    }
    /// As a Rust string.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
    /// As a C string.
    pub fn as_c_str(&self) -> &CStr {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

/// The values an input may hold: used by the generic test suites, the CLI's `gradcheck`
/// and the benchmarks to make random valid inputs, and shown by `describe`.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// Any finite real (logits, features).
    Real,
    /// Strictly positive reals.
    Positive,
    /// Reals `>= 0` (weights).
    NonNegative,
    /// Reals in `(0, 1)` (probabilities).
    Unit,
    /// Reals `< 0` (log-probabilities).
    LogProb,
    /// 0 or 1 (masks, binary labels, as f32 or i64).
    Binary,
    /// Class indices in `[0, size of the letter)`, or `ignore_index` when the loss has one.
    Class(Text),
}

impl Domain {
    /// Short text for `describe`.
    pub fn text(&self) -> String {
        match self {
            Domain::Real => "real".into(),
            Domain::Positive => "> 0".into(),
            Domain::NonNegative => ">= 0".into(),
            Domain::Unit => "(0, 1)".into(),
            Domain::LogProb => "< 0".into(),
            Domain::Binary => "0 or 1".into(),
            Domain::Class(l) => format!("class in [0, {l})"),
        }
    }
}

/// One input tensor of a loss.
#[derive(Clone, Debug)]
pub struct InputSpec {
    /// snake_case name.
    pub name: Text,
    /// Shape letters joined by commas, e.g. `N,C` (a scalar is the empty string).
    pub shape: Text,
    /// Element type.
    pub dtype: DType,
    /// A gradient is returned for this input when asked.
    pub differentiable: bool,
    /// The input may be absent (its documented default applies).
    pub optional: bool,
    /// One-line description.
    pub doc: Text,
    /// Valid values (for random test inputs and docs).
    pub domain: Domain,
}

impl InputSpec {
    fn new(name: &str, shape: &str, dtype: DType) -> Self {
        InputSpec {
            name: Text::new(name),
            shape: Text::new(shape),
            dtype,
            differentiable: false,
            optional: false,
            doc: Text::new(""),
            domain: match dtype {
                DType::F32 => Domain::Real,
                DType::I64 => Domain::Class(Text::new("C")),
            },
        }
    }
    /// Set the valid values.
    pub fn domain(mut self, d: Domain) -> Self {
        self.domain = d;
        self
    }
    /// An f32 input with shape letters such as `"N,C"`.
    pub fn f32(name: &str, shape: &str) -> Self {
        Self::new(name, shape, DType::F32)
    }
    /// An i64 input.
    pub fn i64(name: &str, shape: &str) -> Self {
        Self::new(name, shape, DType::I64)
    }
    /// Mark differentiable.
    pub fn grad(mut self) -> Self {
        self.differentiable = true;
        self
    }
    /// Mark optional.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    /// Set the description.
    pub fn doc(mut self, doc: &str) -> Self {
        self.doc = Text::new(doc);
        self
    }
    /// The shape letters.
    pub fn dims(&self) -> Vec<&str> {
        split_dims(self.shape.as_str())
    }
    /// The first shape letter that is not a fixed size: the per-sample axis of an input such
    /// as `[2, B, T]` (chosen and rejected halves of a batch of `B` pairs) is `B`.
    pub fn row_axis_letter(&self) -> Option<&str> {
        self.dims()
            .into_iter()
            .find(|d| d.parse::<usize>().is_err())
    }
}

fn split_dims(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::trim).collect()
    }
}

/// A named auxiliary output (always f32).
#[derive(Clone, Debug)]
pub struct AuxSpec {
    /// snake_case name.
    pub name: Text,
    /// Shape letters, e.g. `N`.
    pub shape: Text,
    /// One-line description.
    pub doc: Text,
}

impl AuxSpec {
    /// A new auxiliary output.
    pub fn new(name: &str, shape: &str, doc: &str) -> Self {
        AuxSpec {
            name: Text::new(name),
            shape: Text::new(shape),
            doc: Text::new(doc),
        }
    }
    /// The shape letters.
    pub fn dims(&self) -> Vec<&str> {
        split_dims(self.shape.as_str())
    }
}

/// The machine-readable description of a loss.
#[derive(Clone, Debug)]
pub struct LossSpec {
    /// Stable snake_case id, passed to `lk_loss_create`.
    pub id: Text,
    /// Family (classification, preference, ...).
    pub family: Text,
    /// One-line summary.
    pub summary: Text,
    /// Source paper (and official code where one exists).
    pub source: Text,
    /// Batch-level: the loss is one scalar over the batch; `reduction = none` is refused.
    pub batch_level: bool,
    /// Shape letter of the per-sample dimension (`N`, `B`, ...), the length of the `none`
    /// output and of a per-sample `grad_output`.
    pub rows: Text,
    /// Inputs, in the order `lk_loss_compute` takes them.
    pub inputs: Vec<InputSpec>,
    /// Parameters.
    pub params: Vec<ParamSpec>,
    /// Auxiliary outputs.
    pub aux: Vec<AuxSpec>,
    /// Whether the gradient of the first input may be written over that input's own buffer.
    pub in_place: bool,
}

impl LossSpec {
    /// A new spec with the per-sample dimension `N`.
    pub fn new(id: &str, family: &str, summary: &str, source: &str) -> Self {
        LossSpec {
            id: Text::new(id),
            family: Text::new(family),
            summary: Text::new(summary),
            source: Text::new(source),
            batch_level: false,
            rows: Text::new("N"),
            inputs: Vec::new(),
            params: Vec::new(),
            aux: Vec::new(),
            in_place: false,
        }
    }
    /// Add an input.
    pub fn input(mut self, i: InputSpec) -> Self {
        self.inputs.push(i);
        self
    }
    /// Add a parameter.
    pub fn param(mut self, p: ParamSpec) -> Self {
        self.params.push(p);
        self
    }
    /// Add an auxiliary output.
    pub fn aux(mut self, a: AuxSpec) -> Self {
        self.aux.push(a);
        self
    }
    /// Mark batch-level.
    pub fn batch_level(mut self) -> Self {
        self.batch_level = true;
        self
    }
    /// Set the per-sample dimension letter.
    pub fn rows(mut self, letter: &str) -> Self {
        self.rows = Text::new(letter);
        self
    }
    /// Allow the first input's gradient to overwrite it.
    pub fn in_place(mut self) -> Self {
        self.in_place = true;
        self
    }
    /// Index of an input by name.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name.as_str() == name)
    }

    /// Check the spec is well-formed: snake_case names, unique names, defaults inside their
    /// ranges, shape letters known, the per-sample letter used by an input.
    pub fn validate(&self) -> Result<()> {
        let id = self.id.as_str();
        check_ident("loss id", id, id)?;
        if self.inputs.is_empty() {
            bail!(InvalidArg, "{id}: a loss needs at least one input");
        }
        let mut names: Vec<&str> = Vec::new();
        for i in &self.inputs {
            check_ident("input", id, &i.name)?;
            if names.contains(&i.name.as_str()) {
                bail!(InvalidArg, "{id}: input '{}' declared twice", i.name);
            }
            names.push(&i.name);
            for d in i.dims() {
                check_dim(id, &i.name, d)?;
            }
            if i.differentiable && i.dtype != DType::F32 {
                bail!(
                    InvalidArg,
                    "{id}: input '{}' is differentiable but not f32",
                    i.name
                );
            }
        }
        if !self.batch_level
            && !self
                .inputs
                .iter()
                .any(|i| !i.optional && i.row_axis_letter() == Some(self.rows.as_str()))
        {
            bail!(
                InvalidArg,
                "{id}: no required input has the per-sample dimension '{}' first (after fixed-size axes)",
                self.rows
            );
        }
        let mut pnames: Vec<&str> = Vec::new();
        for p in &self.params {
            check_ident("parameter", id, &p.name)?;
            if pnames.contains(&p.name.as_str()) {
                bail!(InvalidArg, "{id}: parameter '{}' declared twice", p.name);
            }
            pnames.push(&p.name);
            if let ParamKind::Enum(c) = &p.kind {
                if c.is_empty() {
                    bail!(
                        InvalidArg,
                        "{id}: enum parameter '{}' has no choices",
                        p.name
                    );
                }
                if matches!(p.default, ParamValue::Enum(k) if k >= c.len()) {
                    bail!(
                        InvalidArg,
                        "{id}: default of '{}' is not one of its choices",
                        p.name
                    );
                }
            }
            if let ParamKind::F64 { min, max, .. } = p.kind {
                if min.is_nan() || max.is_nan() || min > max {
                    bail!(
                        InvalidArg,
                        "{id}: parameter '{}' has an empty range",
                        p.name
                    );
                }
            }
            p.check(id, &p.default).map_err(|e| {
                crate::err!(
                    InvalidArg,
                    "{id}: default of '{}' is invalid: {}",
                    p.name,
                    e.msg
                )
            })?;
        }
        for a in &self.aux {
            check_ident("auxiliary output", id, &a.name)?;
            for d in a.dims() {
                check_dim(id, &a.name, d)?;
            }
        }
        if self.in_place && !self.inputs[0].differentiable {
            bail!(
                InvalidArg,
                "{id}: in-place gradient needs a differentiable first input"
            );
        }
        Ok(())
    }

    /// The default parameter values.
    pub fn default_params(&self) -> Params {
        Params::defaults(&self.params)
    }
}

fn check_ident(what: &str, id: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(InvalidArg, "{id}: {what} name '{s}' is not snake_case");
    }
    Ok(())
}

fn check_dim(id: &str, input: &str, d: &str) -> Result<()> {
    let ok = (d.len() == 1 && d.chars().all(|c| c.is_ascii_uppercase()))
        || (!d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        bail!(
            InvalidArg,
            "{id}: '{input}' has shape letter '{d}'; use one upper-case letter or a number"
        );
    }
    Ok(())
}

/// What a loss does. The family drivers implement this for builtins; the plugin host
/// implements it over a plugin's C callbacks.
pub trait LossImpl: Send + Sync {
    /// Check a combination of parameters beyond each one's own range (called before the
    /// first compute). The default accepts everything.
    fn check_params(&self, _spec: &LossSpec, _params: &Params) -> Result<()> {
        Ok(())
    }
    /// Compute on the CPU. The arguments were validated against the spec: inputs present
    /// where required, dtypes, ranks and shape letters consistent, buffers long enough,
    /// gradients only for differentiable inputs, output lengths right.
    fn compute_cpu(&self, spec: &LossSpec, params: &Params, c: &mut Compute<'_>) -> Result<()>;
    /// The GPU path, if the loss has one. A WGPU context uses it; without one it falls back
    /// to [`LossImpl::compute_cpu`] and says so through `tracing`.
    #[cfg(feature = "wgpu")]
    fn gpu(&self) -> Option<&dyn crate::backend::wgpu::GpuLoss> {
        None
    }
    /// The WGSL source of a generic per-sample kernel (per-sample kernel contract v1, without
    /// the host's prelude), when the loss brings one: plugin losses with a `wgsl_source`.
    fn wgsl_per_sample(&self) -> Option<&str> {
        None
    }
    /// Whether the loss has a GPU path, in every build (the support matrix reads it). The
    /// default says whether [`LossImpl::gpu`] returns one; builtins with a kernel override
    /// it to `true` so that a build without the `wgpu` feature reports the same.
    fn has_gpu(&self) -> bool {
        #[cfg(feature = "wgpu")]
        {
            self.gpu().is_some()
        }
        #[cfg(not(feature = "wgpu"))]
        {
            false
        }
    }
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

/// The builtin losses, built once from [`crate::losses::BUILTINS`].
pub fn builtins() -> &'static [Arc<LossDef>] {
    static B: OnceLock<Vec<Arc<LossDef>>> = OnceLock::new();
    B.get_or_init(|| {
        crate::losses::BUILTINS
            .iter()
            .map(|f| Arc::new(f()))
            .collect()
    })
}

/// Find a builtin by id.
pub fn builtin(id: &str) -> Option<Arc<LossDef>> {
    builtins()
        .iter()
        .find(|d| d.spec.id.as_str() == id)
        .cloned()
}

/// The loss catalogue as a Markdown table (id, family, inputs, CPU, GPU, source), as the
/// README shows it between `<!-- losses:start -->` and `<!-- losses:end -->`.
pub fn markdown_table(defs: &[Arc<LossDef>]) -> String {
    let mut s =
        String::from("| id | family | inputs | CPU | GPU | source |\n|---|---|---|---|---|---|\n");
    for d in defs {
        let sp = &d.spec;
        let inputs: Vec<String> = sp
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "{}{} [{}]",
                    i.name,
                    if i.optional { "?" } else { "" },
                    i.shape
                )
            })
            .collect();
        s.push_str(&format!(
            "| `{}` | {} | {} | yes | {} | {} |\n",
            sp.id,
            sp.family,
            inputs.join(", "),
            if d.imp.has_gpu() { "yes" } else { "no" },
            sp.source.replace('|', "/")
        ));
    }
    s
}
