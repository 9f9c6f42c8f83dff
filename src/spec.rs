//! The machine-readable description of a loss ([`LossSpec`]): inputs with their shape
//! letters, dtypes and valid values, parameters, auxiliary outputs. Specs are plain data; the
//! registry, the C introspection API, the CLI and the test suites read them.

use crate::bail;
use crate::error::Result;
use crate::params::{ParamKind, ParamSpec, ParamValue, Params};
use crate::tensor::DType;
use crate::text::Text;

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
