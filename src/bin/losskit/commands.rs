//! `list`, `describe`, `gradcheck` and `run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use losskit::testing::{self, Case};
use losskit::{Compute, Loss, LossSpec, Reduction, Tensor, TensorMut};

use crate::npy::{self, NpyData};
use crate::{CliResult, Fail, Global, value};

/// Split `--flag=value` into its parts.
fn split_flag(a: &str) -> (String, Option<String>) {
    match a.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
        _ => (a.to_string(), None),
    }
}

/// `NAME=VALUE`, with a message naming `what` when the `=` is missing.
fn pair(s: &str, what: &str) -> CliResult<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Fail::usage(format!(
            "{what} '{s}' is not of the form NAME=VALUE"
        ))),
    }
}

fn reduction(s: &str) -> CliResult<Reduction> {
    Reduction::parse(s).map_err(|e| Fail::usage(e.msg))
}

/// `losskit list`
pub fn list(g: &Global, args: &[String]) -> CliResult {
    if let Some(a) = args.first() {
        return Err(Fail::usage(format!("list takes no arguments, got '{a}'")));
    }
    let defs = g.ctx.losses();
    let w_id = defs
        .iter()
        .map(|d| d.spec.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let w_fam = defs
        .iter()
        .map(|d| d.spec.family.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:w_id$}  {:w_fam$}  summary", "id", "family");
    for d in &defs {
        println!(
            "{:w_id$}  {:w_fam$}  {}",
            d.spec.id.as_str(),
            d.spec.family.as_str(),
            d.spec.summary
        );
    }
    Ok(())
}

/// `losskit describe ID`
pub fn describe(g: &Global, args: &[String]) -> CliResult {
    let [id] = args else {
        return Err(Fail::usage("usage: losskit describe ID"));
    };
    let def = g.ctx.find(id)?;
    print!("{}", describe_text(&def.spec));
    Ok(())
}

fn describe_text(s: &LossSpec) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "{} ({})", s.id, s.family);
    let _ = writeln!(o, "  {}", s.summary);
    let _ = writeln!(o, "  source: {}", s.source);
    let _ = writeln!(
        o,
        "  batch-level: {}; per-sample dimension: {}",
        if s.batch_level {
            "yes (reduction 'none' is refused)"
        } else {
            "no"
        },
        s.rows
    );
    if s.in_place {
        let _ = writeln!(
            o,
            "  the gradient of '{}' may be written over it (in place)",
            s.inputs[0].name
        );
    }
    let _ = writeln!(o, "inputs (in call order):");
    let wn = s.inputs.iter().map(|i| i.name.len()).max().unwrap_or(4);
    let ws = s
        .inputs
        .iter()
        .map(|i| i.shape.len() + 2)
        .max()
        .unwrap_or(3);
    for i in &s.inputs {
        let _ = writeln!(
            o,
            "  {:wn$}  {:ws$}  {}  {:8}  {:8}  {:16}  {}",
            i.name.as_str(),
            format!("[{}]", i.shape),
            i.dtype.name(),
            if i.differentiable { "grad" } else { "no grad" },
            if i.optional { "optional" } else { "required" },
            i.domain.text(),
            i.doc
        );
    }
    if s.params.is_empty() {
        let _ = writeln!(o, "parameters: none");
    } else {
        let _ = writeln!(o, "parameters:");
        let wn = s.params.iter().map(|p| p.name.len()).max().unwrap_or(4);
        let wd = s
            .params
            .iter()
            .map(|p| p.value_text(&p.default).len())
            .max()
            .unwrap_or(1);
        let wr = s
            .params
            .iter()
            .map(|p| p.range_text().len())
            .max()
            .unwrap_or(1);
        for p in &s.params {
            let _ = writeln!(
                o,
                "  {:wn$}  {:4}  default {:wd$}  range {:wr$}  {}",
                p.name.as_str(),
                p.type_name(),
                p.value_text(&p.default),
                p.range_text(),
                p.doc
            );
        }
    }
    if s.aux.is_empty() {
        let _ = writeln!(o, "auxiliary outputs: none");
    } else {
        let _ = writeln!(o, "auxiliary outputs:");
        let wn = s.aux.iter().map(|a| a.name.len()).max().unwrap_or(4);
        let ws = s.aux.iter().map(|a| a.shape.len() + 2).max().unwrap_or(3);
        for a in &s.aux {
            let _ = writeln!(
                o,
                "  {:wn$}  {:ws$}  f32  {}",
                a.name.as_str(),
                format!("[{}]", a.shape),
                a.doc
            );
        }
    }
    o
}

/// Configure `loss` from `name=value` arguments.
fn set_params(loss: &mut Loss, params: &[(String, String)]) -> CliResult {
    for (k, v) in params {
        loss.set_text(k, v)?;
    }
    Ok(())
}

/// `L=n,L=n` letter sizes.
fn parse_sizes(s: &str) -> CliResult<BTreeMap<String, usize>> {
    let mut m = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair(part, "--size entry")?;
        let n: usize = v
            .parse()
            .map_err(|_| Fail::usage(format!("--size {k}={v}: not a non-negative integer")))?;
        m.insert(k, n);
    }
    Ok(m)
}

/// Default tolerance of `gradcheck` on the scaled error
/// `|analytic - numeric| / max(|numeric|, 1e-2)`.
pub const GRADCHECK_TOL: f64 = 1e-2;

/// `losskit gradcheck ID [name=value ...] [--reduction R] [--seed S] [--size L=n,...] [--tol T]`
pub fn gradcheck(g: &Global, args: &[String]) -> CliResult {
    let mut id: Option<String> = None;
    let mut params: Vec<(String, String)> = Vec::new();
    let mut red = Reduction::Mean;
    let mut seed = 1u64;
    let mut sizes = BTreeMap::new();
    let mut tol = GRADCHECK_TOL;
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        let (flag, inline) = split_flag(&a);
        match flag.as_str() {
            "--reduction" => red = reduction(&value(&flag, inline, &mut it)?)?,
            "--seed" => {
                let v = value(&flag, inline, &mut it)?;
                seed = v
                    .parse()
                    .map_err(|_| Fail::usage(format!("--seed '{v}' is not an integer")))?;
            }
            "--size" => sizes = parse_sizes(&value(&flag, inline, &mut it)?)?,
            "--tol" => {
                let v = value(&flag, inline, &mut it)?;
                tol =
                    v.parse::<f64>().ok().filter(|t| *t > 0.0).ok_or_else(|| {
                        Fail::usage(format!("--tol '{v}' is not a positive number"))
                    })?;
            }
            f if f.starts_with("--") => {
                return Err(Fail::usage(format!("gradcheck: unknown option '{f}'")));
            }
            _ if id.is_none() => id = Some(a),
            _ => params.push(pair(&a, "parameter")?),
        }
    }
    let id = id.ok_or_else(|| Fail::usage("usage: losskit gradcheck ID [name=value ...]"))?;
    let mut loss = g.ctx.loss(&id)?;
    set_params(&mut loss, &params)?;
    let case = Case::random(&loss, &sizes, seed, true);
    let reports = testing::gradcheck(&loss, &case, red, 64)?;
    let dims: Vec<String> = case.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{id}: reduction {}, seed {seed}, sizes {}, central differences in f64 over f32 losses",
        red.name(),
        dims.join(",")
    );
    if reports.is_empty() {
        return Err(Fail::from(format!(
            "{id}: no differentiable input to check"
        )));
    }
    if let Some(why) = loss.def().surrogate_reason(loss.params()) {
        println!(
            "note: with these parameters the gradient is a surrogate by design ({why}), so it \
             need not match finite differences of the value"
        );
    }
    let wn = reports
        .iter()
        .map(|r| r.input.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:wn$}  {:>8}  {:>12}  {:>12}  result (tolerance {tol:.0e} on the scaled error)",
        "input", "checked", "max abs err", "scaled err"
    );
    let mut bad = Vec::new();
    for r in &reports {
        let ok = r.max_rel <= tol;
        if !ok {
            bad.push(r.input.clone());
        }
        println!(
            "{:wn$}  {:>8}  {:>12.3e}  {:>12.3e}  {}{}",
            r.input,
            r.checked,
            r.max_abs,
            r.max_rel,
            if ok { "ok" } else { "FAIL" },
            if r.kinks > 0 {
                format!(" ({} elements skipped: the step crossed a kink)", r.kinks)
            } else {
                String::new()
            }
        );
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Fail::from(format!(
            "{id}: gradient of {} exceeds the tolerance {tol:.0e}",
            bad.join(", ")
        )))
    }
}

/// An input read from a file, owned.
enum Owned {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// `losskit run ID --input NAME=FILE ... [--grad NAME=OUT] [--aux NAME=OUT] [--loss OUT]
/// [--reduction R] [name=value ...]`
pub fn run(g: &Global, args: &[String]) -> CliResult {
    let mut id: Option<String> = None;
    let mut params: Vec<(String, String)> = Vec::new();
    let mut red = Reduction::Mean;
    let mut inputs: Vec<(String, PathBuf)> = Vec::new();
    let mut grads: Vec<(String, PathBuf)> = Vec::new();
    let mut auxs: Vec<(String, PathBuf)> = Vec::new();
    let mut loss_out: Option<PathBuf> = None;
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        let (flag, inline) = split_flag(&a);
        match flag.as_str() {
            "--reduction" => red = reduction(&value(&flag, inline, &mut it)?)?,
            "--input" | "--grad" | "--aux" => {
                let (k, v) = pair(&value(&flag, inline, &mut it)?, &flag)?;
                let list = match flag.as_str() {
                    "--input" => &mut inputs,
                    "--grad" => &mut grads,
                    _ => &mut auxs,
                };
                if list.iter().any(|(n, _)| *n == k) {
                    return Err(Fail::usage(format!("{flag} {k} given twice")));
                }
                list.push((k, PathBuf::from(v)));
            }
            "--loss" => loss_out = Some(PathBuf::from(value(&flag, inline, &mut it)?)),
            f if f.starts_with("--") => {
                return Err(Fail::usage(format!("run: unknown option '{f}'")));
            }
            _ if id.is_none() => id = Some(a),
            _ => params.push(pair(&a, "parameter")?),
        }
    }
    let id = id.ok_or_else(|| {
        Fail::usage("usage: losskit run ID --input NAME=FILE.npy ... [--loss OUT.npy]")
    })?;
    let mut loss = g.ctx.loss(&id)?;
    set_params(&mut loss, &params)?;
    let spec = loss.def().spec.clone();
    let names = || {
        spec.inputs
            .iter()
            .map(|i| i.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Read the inputs into spec order.
    let mut data: Vec<Option<(Owned, Vec<usize>)>> = spec.inputs.iter().map(|_| None).collect();
    for (name, path) in &inputs {
        let k = spec.input_index(name).ok_or_else(|| {
            Fail::usage(format!("{id} has no input '{name}' (inputs: {})", names()))
        })?;
        let a = npy::read(path)?;
        let want = spec.inputs[k].dtype;
        let owned = match (a.data, want) {
            (NpyData::F32(v), losskit::DType::F32) => Owned::F32(v),
            (NpyData::I64(v), losskit::DType::I64) => Owned::I64(v),
            (NpyData::I64(_), _) => {
                return Err(Fail::from(format!(
                    "{id}: input '{name}' must be f32; '{}' holds integers",
                    path.display()
                )));
            }
            (NpyData::F32(_), _) => {
                return Err(Fail::from(format!(
                    "{id}: input '{name}' must be i64; '{}' holds floats",
                    path.display()
                )));
            }
        };
        data[k] = Some((owned, a.shape));
    }
    // Letter sizes, for the output shapes.
    let mut dims: BTreeMap<String, usize> = BTreeMap::new();
    for (is, d) in spec.inputs.iter().zip(&data) {
        if let Some((_, shape)) = d {
            for (l, &n) in is.dims().iter().zip(shape) {
                dims.entry(l.to_string()).or_insert(n);
            }
        }
    }
    let letter = |l: &str| -> usize {
        l.parse()
            .unwrap_or_else(|_| dims.get(l).copied().unwrap_or(0))
    };
    let mut grad_bufs: Vec<(usize, Vec<f32>, &Path)> = Vec::new();
    for (name, path) in &grads {
        let k = spec.input_index(name).ok_or_else(|| {
            Fail::usage(format!("{id} has no input '{name}' (inputs: {})", names()))
        })?;
        if !spec.inputs[k].differentiable {
            return Err(Fail::usage(format!(
                "{id}: input '{name}' is not differentiable"
            )));
        }
        let Some((_, shape)) = &data[k] else {
            return Err(Fail::usage(format!(
                "{id}: gradient of '{name}' asked, but the input was not given"
            )));
        };
        grad_bufs.push((k, vec![0.0; shape.iter().product()], path));
    }
    let mut aux_bufs: Vec<(String, Vec<usize>, Vec<f32>, &Path)> = Vec::new();
    for (name, path) in &auxs {
        let a = spec
            .aux
            .iter()
            .find(|a| a.name.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = spec.aux.iter().map(|a| a.name.as_str()).collect();
                Fail::usage(format!(
                    "{id} has no auxiliary output '{name}' (available: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
        let shape: Vec<usize> = a.dims().iter().map(|l| letter(l)).collect();
        let n = shape.iter().product();
        aux_bufs.push((name.clone(), shape, vec![0.0; n], path));
    }
    for (k, is) in spec.inputs.iter().enumerate() {
        if data[k].is_none() && !is.optional {
            return Err(Fail::usage(format!(
                "{id}: required input '{}' is missing (give --input {}=FILE.npy)",
                is.name, is.name
            )));
        }
    }
    let out_len = match red {
        Reduction::None => letter(spec.rows.as_str()),
        _ => 1,
    };
    let mut lossv = vec![0.0f32; out_len];
    {
        let mut c = Compute::new(red, &mut lossv);
        for d in &data {
            c = match d {
                Some((Owned::F32(v), s)) => c.input(Tensor::f32(v, s)),
                Some((Owned::I64(v), s)) => c.input(Tensor::i64(v, s)),
                None => c.absent(),
            };
        }
        for (k, buf, _) in grad_bufs.iter_mut() {
            let shape = data[*k].as_ref().map(|d| d.1.clone()).unwrap_or_default();
            c = c.grad(*k, TensorMut::new(buf, &shape));
        }
        for (name, shape, buf, _) in aux_bufs.iter_mut() {
            c = c.aux(name, TensorMut::new(buf, shape));
        }
        loss.compute(&mut c)?;
    }
    let loss_shape: Vec<usize> = match red {
        Reduction::None => vec![out_len],
        _ => Vec::new(),
    };
    match &loss_out {
        Some(p) => npy::write_f32(p, &loss_shape, &lossv)?,
        None => match red {
            Reduction::None => {
                for v in &lossv {
                    println!("{v}");
                }
            }
            _ => println!("{}", lossv[0]),
        },
    }
    for (k, buf, path) in &grad_bufs {
        let shape = data[*k].as_ref().map(|d| d.1.clone()).unwrap_or_default();
        npy::write_f32(path, &shape, buf)?;
    }
    for (_, shape, buf, path) in &aux_bufs {
        npy::write_f32(path, shape, buf)?;
    }
    Ok(())
}
