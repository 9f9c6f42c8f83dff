//! Random valid inputs for any registered loss, and a finite-difference gradient check.
//!
//! Used by the generic test suites, the CPU/GPU parity suite, the CLI's `gradcheck` and the
//! benchmarks, so that every loss (builtin or plugin) is exercised from its spec alone:
//! shapes come from the spec's letters, values from each input's [`Domain`].

use std::collections::BTreeMap;

use crate::compute::Compute;
use crate::context::Loss;
use crate::error::Result;
use crate::params::ParamValue;
use crate::reduction::Reduction;
use crate::registry::{Domain, LossSpec};
use crate::tensor::{DType, Tensor, TensorMut};

pub use crate::rng::Rng;

/// Owned tensor data.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedData {
    /// f32 elements.
    F32(Vec<f32>),
    /// i64 elements.
    I64(Vec<i64>),
}

/// An owned contiguous tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedTensor {
    /// Elements, row-major.
    pub data: OwnedData,
    /// Shape.
    pub shape: Vec<usize>,
}

impl OwnedTensor {
    /// A borrowed view.
    pub fn view(&self) -> Tensor<'_> {
        match &self.data {
            OwnedData::F32(v) => Tensor::f32(v, &self.shape),
            OwnedData::I64(v) => Tensor::i64(v, &self.shape),
        }
    }
    /// The f32 elements (empty for i64).
    pub fn f32(&self) -> &[f32] {
        match &self.data {
            OwnedData::F32(v) => v,
            OwnedData::I64(_) => &[],
        }
    }
}

/// The default sizes of shape letters for small test problems.
pub fn default_sizes() -> BTreeMap<String, usize> {
    [
        ("N", 6),
        ("C", 7),
        ("D", 5),
        ("T", 4),
        ("B", 5),
        ("K", 3),
        ("M", 9),
        ("G", 3),
        ("V", 11),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

/// Inputs for one call of a loss.
#[derive(Clone, Debug)]
pub struct Case {
    /// Sizes of the shape letters.
    pub dims: BTreeMap<String, usize>,
    /// Inputs in spec order (None = absent optional input).
    pub inputs: Vec<Option<OwnedTensor>>,
}

/// What one call produced.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The loss output (1 value, or one per sample for `none`).
    pub loss: Vec<f32>,
    /// Gradients per input (None where not differentiable or not asked).
    pub grads: Vec<Option<Vec<f32>>>,
}

fn rows_letter_count(spec: &LossSpec, dims: &BTreeMap<String, usize>) -> usize {
    dims.get(spec.rows.as_str()).copied().unwrap_or(1)
}

/// Random valid inputs for `spec` with letter sizes `dims` (missing letters get a default).
/// Optional inputs are present when `with_optional`. When the loss has an `ignore_index`
/// parameter, about one element in five of each required class input is set to
/// `ignore_index`.
pub fn random_case(
    spec: &LossSpec,
    ignore_index: Option<i64>,
    dims: &BTreeMap<String, usize>,
    seed: u64,
    with_optional: bool,
) -> Case {
    let mut rng = Rng::new(seed);
    let mut all = default_sizes();
    for (k, v) in dims {
        all.insert(k.clone(), *v);
    }
    let size = |l: &str| -> usize {
        l.parse::<usize>()
            .unwrap_or_else(|_| all.get(l).copied().unwrap_or(3))
    };
    let mut inputs = Vec::new();
    for is in &spec.inputs {
        if is.optional && !with_optional {
            inputs.push(None);
            continue;
        }
        let shape: Vec<usize> = is.dims().iter().map(|l| size(l)).collect();
        let n: usize = shape.iter().product();
        let data = match (is.dtype, &is.domain) {
            (DType::I64, Domain::Class(l)) => {
                let c = size(l) as u64;
                OwnedData::I64(
                    (0..n)
                        .map(|k| match ignore_index {
                            // Keep the first element valid so a small case is never all-ignored.
                            // Optional class inputs (side information such as a reference
                            // prediction) are never set to ignore_index.
                            Some(ig) if !is.optional && k > 0 && rng.below(5) == 0 => ig,
                            _ => rng.below(c) as i64,
                        })
                        .collect(),
                )
            }
            (DType::I64, _) => OwnedData::I64((0..n).map(|_| rng.below(2) as i64).collect()),
            (DType::F32, d) => OwnedData::F32(
                (0..n)
                    .map(|_| {
                        (match d {
                            Domain::Real => 1.5 * rng.normal(),
                            Domain::Positive => 0.2 + 1.8 * rng.uniform(),
                            Domain::NonNegative => 0.1 + 1.9 * rng.uniform(),
                            Domain::Unit => 0.05 + 0.9 * rng.uniform(),
                            Domain::LogProb => -(0.05 + 3.0 * rng.uniform()),
                            Domain::Binary => rng.below(2) as f64,
                            Domain::Class(l) => rng.below(size(l) as u64) as f64,
                        }) as f32
                    })
                    .collect(),
            ),
        };
        inputs.push(Some(OwnedTensor { data, shape }));
    }
    let mut bound = BTreeMap::new();
    for is in &spec.inputs {
        for l in is.dims() {
            if l.parse::<usize>().is_err() {
                bound.insert(l.to_string(), size(l));
            }
        }
    }
    Case {
        dims: bound,
        inputs,
    }
}

impl Case {
    /// Random valid inputs for a configured loss (uses its `ignore_index` if it has one).
    /// Letter sizes: the defaults, then the loss's `test_dims`, then `dims`. Optional inputs
    /// are present when `with_optional` or when the loss's defaults need them, except those
    /// the loss lists in `test_omit`; the inputs the loss lists in `test_values` get values from
    /// its generators.
    pub fn random(
        loss: &Loss,
        dims: &BTreeMap<String, usize>,
        seed: u64,
        with_optional: bool,
    ) -> Case {
        let ig = match loss.params().get("ignore_index") {
            Some(ParamValue::I64(v)) => Some(v),
            _ => None,
        };
        let def = loss.def();
        let mut all: BTreeMap<String, usize> = def.test_dims.iter().cloned().collect();
        for (k, v) in dims {
            all.insert(k.clone(), *v);
        }
        let mut case = random_case(
            &def.spec,
            ig,
            &all,
            seed,
            with_optional || def.test_needs_optional,
        );
        for (k, is) in def.spec.inputs.iter().enumerate() {
            if is.optional && def.test_omit.iter().any(|n| n == is.name.as_str()) {
                case.inputs[k] = None;
            }
            let values = def.test_values.iter().find(|(n, _)| n == is.name.as_str());
            if let (Some((_, f)), Some(t)) = (values, case.inputs[k].as_mut()) {
                t.data = OwnedData::F32(f(&t.shape, seed.wrapping_add(k as u64)));
            }
        }
        case
    }

    /// Length of the per-sample output.
    pub fn rows(&self, spec: &LossSpec) -> usize {
        rows_letter_count(spec, &self.dims)
    }

    /// Compute with `reduction`, asking for the gradient of every present differentiable
    /// input when `grads`, with an optional upstream gradient.
    pub fn run(
        &self,
        loss: &Loss,
        reduction: Reduction,
        grads: bool,
        grad_output: Option<&[f32]>,
    ) -> Result<Outcome> {
        let spec = &loss.def().spec;
        let out_len = match reduction {
            Reduction::None => self.rows(spec),
            _ => 1,
        };
        let mut lossv = vec![0.0f32; out_len];
        let mut gbufs: Vec<Option<Vec<f32>>> = spec
            .inputs
            .iter()
            .zip(&self.inputs)
            .map(|(is, t)| match t {
                Some(t) if grads && is.differentiable => Some(vec![f32::NAN; t.f32().len()]),
                _ => None,
            })
            .collect();
        {
            let mut c = Compute::new(reduction, &mut lossv);
            for t in &self.inputs {
                c.inputs.push(t.as_ref().map(|t| t.view()));
            }
            for (k, g) in gbufs.iter_mut().enumerate() {
                if let (Some(g), Some(t)) = (g.as_mut(), self.inputs[k].as_ref()) {
                    c = c.grad(k, TensorMut::new(g, &t.shape));
                }
            }
            if let Some(go) = grad_output {
                c = c.grad_output(go);
            }
            loss.compute(&mut c)?;
        }
        Ok(Outcome {
            loss: lossv,
            grads: gbufs,
        })
    }
}

/// Worst gradient error of one input.
#[derive(Clone, Debug)]
pub struct GradReport {
    /// Input name.
    pub input: String,
    /// Largest `|analytic - numeric|` beyond the element's noise floor (see `noise`).
    pub max_abs: f64,
    /// Largest such error divided by `max(|numeric|, 1e-2)`.
    pub max_rel: f64,
    /// Elements checked.
    pub checked: usize,
    /// Elements skipped because the step crossed a kink of the loss (one-sided differences
    /// disagree: a clip, a hinge, a max). A smooth loss has none.
    pub kinks: usize,
    /// Largest noise floor of the numeric derivative: the f32 resolution of the loss value
    /// (about one ulp) divided by the step, which finite differences cannot see below.
    pub noise: f64,
}

/// Compare the analytic gradient of the reduced loss with finite differences: central
/// differences with steps `h` and `h/2` (`h = 1e-2·max(|x|, 0.5)`), combined by Richardson
/// extrapolation so the truncation error is of order `h⁴` (computed in f64 from the f32 loss
/// values). Errors are counted beyond the numeric derivative's noise floor (one f32 ulp of
/// the loss over the step), which matters for losses with large values (e.g. `sum_exp`).
/// Where the result disagrees, the check is repeated with a step ten times smaller (a step
/// that straddles a kink close to x disagrees at h but not at h/10); elements where the
/// one-sided differences still disagree (a clip, a hinge) are counted in `kinks` instead of
/// compared.
/// Checks at most `max_elems` elements per input, spread over the tensor.
pub fn gradcheck(
    loss: &Loss,
    case: &Case,
    reduction: Reduction,
    max_elems: usize,
) -> Result<Vec<GradReport>> {
    let spec = &loss.def().spec;
    let base = case.run(loss, reduction, true, None)?;
    let scalar = |o: &Outcome| -> f64 { o.loss.iter().map(|&v| v as f64).sum() };
    let base_val = scalar(&base);
    let mut reports = Vec::new();
    for (k, is) in spec.inputs.iter().enumerate() {
        let (Some(t), Some(g)) = (&case.inputs[k], &base.grads[k]) else {
            continue;
        };
        let n = t.f32().len();
        if n == 0 {
            continue;
        }
        let step = (n / max_elems.max(1)).max(1);
        let mut rep = GradReport {
            input: is.name.to_string(),
            max_abs: 0.0,
            max_rel: 0.0,
            checked: 0,
            kinks: 0,
            noise: 0.0,
        };
        let mut idx = 0;
        while idx < n {
            let x0 = t.f32()[idx];
            let h = 1e-2f32 * x0.abs().max(0.5);
            let eval = |v: f32| -> Result<f64> {
                let mut c2 = case.clone();
                if let Some(OwnedTensor {
                    data: OwnedData::F32(d),
                    ..
                }) = &mut c2.inputs[k]
                {
                    d[idx] = v;
                }
                Ok(scalar(&c2.run(loss, reduction, false, None)?))
            };
            let ana = g[idx] as f64;
            let mut best: Option<(f64, f64, bool)> = None;
            for hh in [h, h / 10.0] {
                let (fp, fm) = (eval(x0 + hh)?, eval(x0 - hh)?);
                let d1 = (fp - fm) / ((x0 + hh) as f64 - (x0 - hh) as f64);
                let (hp2, hm2) = (x0 + 0.5 * hh, x0 - 0.5 * hh);
                let d2 = (eval(hp2)? - eval(hm2)?) / (hp2 as f64 - hm2 as f64);
                // Richardson extrapolation cancels the h² truncation term.
                let num = (4.0 * d2 - d1) / 3.0;
                // The numeric derivative cannot resolve changes below about one f32 ulp of
                // the loss: 3·ulp(|f|)/h for this combination is not counted as error.
                let f_mag = (d1.abs() * hh as f64 + base_val.abs()).max(f64::MIN_POSITIVE);
                let noise = 3.0 * f_mag * f32::EPSILON as f64 / hh as f64;
                let err = ((ana - num).abs() - noise).max(0.0);
                let (dp, dm) = (
                    (fp - base_val) / ((x0 + hh) - x0) as f64,
                    (base_val - fm) / (x0 - (x0 - hh)) as f64,
                );
                let smooth = (dp - dm).abs() <= 0.5 * (dp.abs() + dm.abs()) + 1e-4 + 2.0 * noise;
                let kink = !smooth && err > 1e-4;
                if best.is_none_or(|(b, _, _)| err < b) {
                    best = Some((err, noise, kink));
                }
                if err <= 1e-4 {
                    break;
                }
            }
            let (err, noise, kink) = best.unwrap_or((0.0, 0.0, false));
            rep.noise = rep.noise.max(noise);
            if kink {
                // The step crosses a kink: no finite difference is meaningful here.
                rep.kinks += 1;
                idx += step;
                continue;
            }
            rep.max_abs = rep.max_abs.max(err);
            rep.max_rel = rep.max_rel.max(err / ana.abs().max(1e-2));
            rep.checked += 1;
            idx += step;
        }
        reports.push(rep);
    }
    Ok(reports)
}
