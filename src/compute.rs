//! The arguments of one compute call, and their validation against a loss's spec.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::reduction::Reduction;
use crate::spec::{Domain, LossSpec};
use crate::tensor::{Data, Grad, Tensor, TensorMut};
use crate::{bail, err};

/// Everything one compute call reads and writes.
///
/// Build it with [`Compute::new`] and the `input`/`grad`/`aux` methods, then pass it to
/// [`crate::Loss::compute`].
#[derive(Debug)]
pub struct Compute<'a> {
    /// Inputs in spec order; `None` = an absent optional input.
    pub inputs: Vec<Option<Tensor<'a>>>,
    /// The reduction.
    pub reduction: Reduction,
    /// Upstream gradient: one value for mean/sum, one per sample for none. None = 1.
    pub grad_output: Option<&'a [f32]>,
    /// Loss output: one value for mean/sum, one per sample for none.
    pub loss: &'a mut [f32],
    /// Gradient destinations, one slot per input (missing trailing slots = not wanted).
    pub grads: Vec<Grad<'a>>,
    /// Requested auxiliary outputs by name.
    pub aux: Vec<(String, TensorMut<'a>)>,
    /// Every shape letter of the loss's spec (inputs, auxiliary outputs, the per-sample
    /// letter), filled in by [`Compute::validate`]: its size in this call, or None when no
    /// tensor of the call has it (it occurs only in absent optional inputs or auxiliary
    /// outputs not asked for). Read it with [`Compute::dim`] / [`Compute::bound_dim`].
    pub dims: BTreeMap<String, Option<usize>>,
    /// What the loss's validation produced for this call, before dispatch; both backends
    /// execute it (see [`Plan`]).
    pub plan: Plan,
}

/// The per-call plan: built once, before dispatch, by the loss's validation step
/// (`LossImpl::plan`), and read by the CPU driver and the GPU executor alike, so that both
/// refuse (or accept) the same inputs by construction and divide `mean` by the same number.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Set once the plan was built for this call.
    pub built: bool,
    /// The `mean` denominator; `None` = the number of rows.
    pub den: Option<f64>,
    /// Validated integer targets, one per row (`ignore_index` rows included).
    pub targets: Option<Vec<i64>>,
    /// Validated class weights (finite, `>= 0`), when given.
    pub class_weights: Option<Vec<f32>>,
    /// Validated sample weights (finite, `>= 0`), when given.
    pub sample_weight: Option<Vec<f32>>,
    /// Constants computed on the host for the GPU kernel, by name (the kernel declares the
    /// names it reads, `LK_C_<NAME>` after the parameters).
    pub consts: Vec<(&'static str, f32)>,
}

impl Plan {
    /// A plan with only a `mean` denominator (`None` = the number of rows).
    pub fn with_den(den: Option<f64>) -> Self {
        Plan {
            den,
            ..Plan::default()
        }
    }
}

impl<'a> Compute<'a> {
    /// A call with `reduction` writing the loss into `loss`.
    pub fn new(reduction: Reduction, loss: &'a mut [f32]) -> Self {
        Compute {
            inputs: Vec::new(),
            reduction,
            grad_output: None,
            loss,
            grads: Vec::new(),
            aux: Vec::new(),
            dims: BTreeMap::new(),
            plan: Plan::default(),
        }
    }
    /// Append the next input.
    pub fn input(mut self, t: Tensor<'a>) -> Self {
        self.inputs.push(Some(t));
        self
    }
    /// Append an absent optional input.
    pub fn absent(mut self) -> Self {
        self.inputs.push(None);
        self
    }
    /// Ask for the gradient of input `index` into `g`.
    pub fn grad(mut self, index: usize, g: TensorMut<'a>) -> Self {
        self.set_grad(index, Grad::Out(g));
        self
    }
    /// Ask for the gradient of input `index` to be written over that input (which must have
    /// been given with [`Tensor::f32_in_place`]).
    pub fn grad_in_place(mut self, index: usize) -> Self {
        self.set_grad(index, Grad::InPlace);
        self
    }
    fn set_grad(&mut self, index: usize, g: Grad<'a>) {
        while self.grads.len() <= index {
            self.grads.push(Grad::None);
        }
        self.grads[index] = g;
    }
    /// Set the upstream gradient.
    pub fn grad_output(mut self, g: &'a [f32]) -> Self {
        self.grad_output = Some(g);
        self
    }
    /// Ask for an auxiliary output.
    pub fn aux(mut self, name: &str, t: TensorMut<'a>) -> Self {
        self.aux.push((name.to_string(), t));
        self
    }

    /// Size of a shape letter of the spec in this call (after validation); 0 when no tensor
    /// of the call has the letter (see [`Compute::bound_dim`]). A letter the spec does not
    /// have is a programming error inside the library and panics, in every build profile
    /// (the C boundary turns the panic into `LK_ERR_PANIC`).
    #[track_caller]
    pub fn dim(&self, letter: &str) -> usize {
        self.bound_dim(letter).unwrap_or(0)
    }
    /// Size of a shape letter of the spec in this call, or None when the letter occurs only
    /// in absent optional inputs (or auxiliary outputs not asked for). Panics like
    /// [`Compute::dim`] for a letter the spec does not have.
    #[track_caller]
    pub fn bound_dim(&self, letter: &str) -> Option<usize> {
        match self.dims.get(letter) {
            Some(&n) => n,
            None => panic!(
                "losskit internal error: shape letter '{letter}' is not in the loss's spec (letters: {}){}",
                self.dims.keys().cloned().collect::<Vec<_>>().join(", "),
                if self.dims.is_empty() {
                    "; the call is not validated yet"
                } else {
                    ""
                }
            ),
        }
    }
    /// Input `i` if present.
    pub fn get(&self, i: usize) -> Option<&Tensor<'a>> {
        self.inputs.get(i).and_then(|t| t.as_ref())
    }
    /// True when the gradient of input `i` is wanted.
    pub fn wants_grad(&self, i: usize) -> bool {
        self.grads.get(i).is_some_and(|g| g.wanted())
    }
    /// Take the auxiliary output `name` if it was requested.
    pub fn take_aux(&mut self, name: &str) -> Option<TensorMut<'a>> {
        let k = self.aux.iter().position(|(n, _)| n == name)?;
        Some(self.aux.swap_remove(k).1)
    }

    /// Check the call against `spec` and record the sizes of the shape letters.
    pub fn validate(&mut self, spec: &LossSpec) -> Result<()> {
        let id = spec.id.as_str();
        if self.inputs.len() > spec.inputs.len() {
            bail!(
                InvalidArg,
                "{id}: {} inputs given, the loss takes {}",
                self.inputs.len(),
                spec.inputs.len()
            );
        }
        while self.inputs.len() < spec.inputs.len() {
            self.inputs.push(None);
        }
        if self.grads.len() > spec.inputs.len() {
            bail!(
                InvalidArg,
                "{id}: {} gradient slots given, the loss has {} inputs",
                self.grads.len(),
                spec.inputs.len()
            );
        }
        while self.grads.len() < spec.inputs.len() {
            self.grads.push(Grad::None);
        }
        let mut dims: BTreeMap<String, usize> = BTreeMap::new();
        let mut from: BTreeMap<String, String> = BTreeMap::new();
        for (k, is) in spec.inputs.iter().enumerate() {
            let name = is.name.as_str();
            let Some(t) = &self.inputs[k] else {
                if !is.optional {
                    bail!(NullArg, "{id}: required input '{name}' (#{k}) is missing");
                }
                if self.grads[k].wanted() {
                    bail!(InvalidArg, "{id}: gradient asked for absent input '{name}'");
                }
                continue;
            };
            if t.dtype() != is.dtype {
                bail!(
                    DType,
                    "{id}: input '{name}' must be {}, got {}",
                    is.dtype.name(),
                    t.dtype().name()
                );
            }
            let letters = is.dims();
            if t.shape.len() != letters.len() {
                bail!(
                    ShapeMismatch,
                    "{id}: input '{name}' must have rank {} [{}], got shape {:?}",
                    letters.len(),
                    is.shape,
                    t.shape
                );
            }
            for (axis, (l, &n)) in letters.iter().zip(&t.shape).enumerate() {
                bind(id, &mut dims, &mut from, l, n, name, axis)?;
            }
            t.check_len(&format!("{id}: input '{name}'"))?;
            let in_place_data = matches!(t.data, Data::F32InPlace(_));
            // A device input may receive its own gradient without being marked.
            let device_f32 =
                matches!(&t.data, Data::Device(d) if d.dtype == crate::tensor::DType::F32);
            match &self.grads[k] {
                Grad::None => {
                    if in_place_data {
                        bail!(
                            InvalidArg,
                            "{id}: input '{name}' was given for an in-place gradient, but no gradient was asked"
                        );
                    }
                }
                Grad::Device(o) => {
                    if !is.differentiable {
                        bail!(InvalidArg, "{id}: input '{name}' is not differentiable");
                    }
                    if in_place_data {
                        bail!(
                            InvalidArg,
                            "{id}: input '{name}' is in place but has a separate gradient buffer"
                        );
                    }
                    if o.shape != t.shape {
                        bail!(
                            ShapeMismatch,
                            "{id}: gradient of '{name}' has shape {:?}, the input has {:?}",
                            o.shape,
                            t.shape
                        );
                    }
                    o.check_len(&format!("{id}: gradient of '{name}'"))?;
                }
                g @ (Grad::Out(_) | Grad::InPlace) => {
                    if !is.differentiable {
                        bail!(InvalidArg, "{id}: input '{name}' is not differentiable");
                    }
                    if let Grad::Out(o) = g {
                        if in_place_data {
                            bail!(
                                InvalidArg,
                                "{id}: input '{name}' is in place but has a separate gradient buffer"
                            );
                        }
                        if o.shape != t.shape {
                            bail!(
                                ShapeMismatch,
                                "{id}: gradient of '{name}' has shape {:?}, the input has {:?}",
                                o.shape,
                                t.shape
                            );
                        }
                        o.check_len(&format!("{id}: gradient of '{name}'"))?;
                    } else {
                        if !(in_place_data || device_f32) {
                            bail!(
                                InvalidArg,
                                "{id}: in-place gradient of '{name}' needs the input given as in-place"
                            );
                        }
                        if !(spec.in_place && k == 0) {
                            bail!(
                                Unsupported,
                                "{id}: the gradient of '{name}' cannot be written in place"
                            );
                        }
                    }
                }
            }
        }
        let rows_letter = spec.rows.as_str();
        let n_rows = dims.get(rows_letter).copied();
        if spec.batch_level && self.reduction == Reduction::None {
            bail!(
                Unsupported,
                "{id}: is batch-level; reduction 'none' is not defined (use mean or sum)"
            );
        }
        let out_len = match self.reduction {
            Reduction::None => n_rows.ok_or_else(|| {
                err!(
                    Internal,
                    "{id}: per-sample dimension '{rows_letter}' unbound"
                )
            })?,
            _ => 1,
        };
        if self.loss.len() != out_len {
            bail!(
                ShapeMismatch,
                "{id}: loss output has {} elements, reduction '{}' writes {out_len}",
                self.loss.len(),
                self.reduction.name()
            );
        }
        if let Some(g) = self.grad_output {
            if g.len() != out_len {
                bail!(
                    ShapeMismatch,
                    "{id}: grad_output has {} elements, reduction '{}' needs {out_len}",
                    g.len(),
                    self.reduction.name()
                );
            }
        }
        for (name, t) in &self.aux {
            let Some(a) = spec.aux.iter().find(|a| a.name.as_str() == name) else {
                let known: Vec<&str> = spec.aux.iter().map(|a| a.name.as_str()).collect();
                bail!(
                    InvalidArg,
                    "{id}: no auxiliary output '{name}' (available: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                );
            };
            let want: Vec<usize> = a
                .dims()
                .iter()
                .map(|l| letter_size(&dims, l))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| err!(Internal, "{id}: aux '{name}' has an unbound letter"))?;
            if t.shape != want {
                bail!(
                    ShapeMismatch,
                    "{id}: auxiliary output '{name}' must have shape {want:?} [{}], got {:?}",
                    a.shape,
                    t.shape
                );
            }
            t.check_len(&format!("{id}: auxiliary output '{name}'"))?;
        }
        let mut all: BTreeMap<String, Option<usize>> =
            dims.into_iter().map(|(l, n)| (l, Some(n))).collect();
        let declared = spec
            .inputs
            .iter()
            .flat_map(|i| i.dims())
            .chain(spec.inputs.iter().filter_map(|i| match &i.domain {
                Domain::Class(l) => Some(l.as_str()),
                _ => None,
            }))
            .chain(spec.aux.iter().flat_map(|a| a.dims()))
            .chain(std::iter::once(rows_letter));
        for l in declared {
            if l.parse::<usize>().is_err() {
                all.entry(l.to_string()).or_insert(None);
            }
        }
        self.dims = all;
        Ok(())
    }
}

fn letter_size(dims: &BTreeMap<String, usize>, l: &str) -> Option<usize> {
    if let Ok(n) = l.parse::<usize>() {
        return Some(n);
    }
    dims.get(l).copied()
}

fn bind(
    id: &str,
    dims: &mut BTreeMap<String, usize>,
    from: &mut BTreeMap<String, String>,
    letter: &str,
    n: usize,
    input: &str,
    axis: usize,
) -> Result<()> {
    if let Ok(fixed) = letter.parse::<usize>() {
        if fixed != n {
            bail!(
                ShapeMismatch,
                "{id}: input '{input}' axis {axis} must be {fixed}, got {n}"
            );
        }
        return Ok(());
    }
    match dims.get(letter) {
        Some(&m) if m != n => bail!(
            ShapeMismatch,
            "{id}: input '{input}' axis {axis} ({letter}) is {n}, but {letter} = {m} from '{}'",
            from.get(letter).map(String::as_str).unwrap_or("?")
        ),
        Some(_) => {}
        None => {
            dims.insert(letter.to_string(), n);
            from.insert(letter.to_string(), input.to_string());
        }
    }
    Ok(())
}
