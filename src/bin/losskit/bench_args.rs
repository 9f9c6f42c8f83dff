//! The command line of `losskit bench`: shapes of the bandwidth cases, fixed-size cases,
//! repetitions, extra letter sizes, loss filter, JSON output.

use std::collections::BTreeMap;

use crate::{CliResult, Fail, value};

/// Default shapes of the bandwidth cases (`N x V`).
pub const SHAPES: &[(usize, usize)] = &[(4096, 32000), (8192, 50257)];
/// `--quick` shapes.
pub const QUICK_SHAPES: &[(usize, usize)] = &[(1024, 32000)];

/// Default fixed-size cases: the preference and RL losses at training-batch sizes (a
/// GRPO step's `64 x 4096` tokens, `65536` pairs), where the drivers' threading shows.
pub const FIXED: &[(&str, &[(&str, usize)])] = &[
    ("grpo", &[("N", 64), ("T", 4096)]),
    ("ppo_clip", &[("N", 64), ("T", 4096)]),
    ("steer", &[("N", 64), ("T", 4096)]),
    ("sparsepo", &[("B", 32), ("T", 4096)]),
    ("dpo", &[("B", 65536)]),
    ("simpo", &[("B", 65536)]),
    ("kto", &[("N", 65536)]),
];
/// `--quick` fixed-size cases.
pub const QUICK_FIXED: &[(&str, &[(&str, usize)])] =
    &[("grpo", &[("N", 16), ("T", 1024)]), ("dpo", &[("B", 8192)])];

/// A loss at explicit letter sizes.
pub type FixedCase = (String, BTreeMap<String, usize>);

/// What to measure.
pub struct Opts {
    /// Write the results as JSON here.
    pub json: Option<String>,
    /// Shapes of the bandwidth cases.
    pub shapes: Vec<(usize, usize)>,
    /// Fixed-size cases.
    pub fixed: Vec<FixedCase>,
    /// Timed calls per case.
    pub reps: usize,
    /// Sizes of letters the shapes do not give (`D`).
    pub extra: BTreeMap<String, usize>,
    /// Only these losses (all when empty).
    pub only: Vec<String>,
}

/// `NxV`.
pub fn parse_shape(s: &str) -> CliResult<(usize, usize)> {
    let bad = || {
        Fail::usage(format!(
            "shape '{s}' is not of the form NxV (e.g. 4096x32000)"
        ))
    };
    let (a, b) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let n = a.trim().parse::<usize>().map_err(|_| bad())?;
    let v = b.trim().parse::<usize>().map_err(|_| bad())?;
    if n == 0 || v == 0 {
        return Err(bad());
    }
    Ok((n, v))
}

/// `L=n,L=n,...` (the value of `flag`).
fn parse_sizes(flag: &str, s: &str) -> CliResult<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| Fail::usage(format!("{flag} entry '{part}' is not L=n")))?;
        let n = v
            .parse::<usize>()
            .map_err(|_| Fail::usage(format!("{flag} {k}={v}: not an integer")))?;
        out.insert(k.to_string(), n);
    }
    Ok(out)
}

/// `ID:L=n,L=n,...`.
fn parse_case(s: &str) -> CliResult<FixedCase> {
    let (id, sizes) = s.split_once(':').ok_or_else(|| {
        Fail::usage(format!(
            "--case '{s}' is not ID:L=n,... (e.g. grpo:N=64,T=4096)"
        ))
    })?;
    Ok((id.to_string(), parse_sizes("--case", sizes)?))
}

fn default_fixed(quick: bool) -> Vec<FixedCase> {
    let list = if quick { QUICK_FIXED } else { FIXED };
    list.iter()
        .map(|(id, dims)| {
            let dims = dims.iter().map(|(l, n)| (l.to_string(), *n)).collect();
            (id.to_string(), dims)
        })
        .collect()
}

/// Parse the arguments after `bench`.
pub fn parse_opts(args: &[String]) -> CliResult<Opts> {
    let mut o = Opts {
        json: None,
        shapes: Vec::new(),
        fixed: Vec::new(),
        reps: 10,
        extra: BTreeMap::new(),
        only: Vec::new(),
    };
    let mut quick = false;
    let mut reps: Option<usize> = None;
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--json" => o.json = Some(value(&flag, inline, &mut it)?),
            "--shapes" => {
                for s in value(&flag, inline, &mut it)?.split(',') {
                    o.shapes.push(parse_shape(s)?);
                }
            }
            "--case" => o.fixed.push(parse_case(&value(&flag, inline, &mut it)?)?),
            "--quick" => quick = true,
            "--reps" => {
                let v = value(&flag, inline, &mut it)?;
                reps = Some(v.parse::<usize>().ok().filter(|r| *r > 0).ok_or_else(|| {
                    Fail::usage(format!("--reps '{v}' is not a positive integer"))
                })?);
            }
            "--size" => o
                .extra
                .extend(parse_sizes("--size", &value(&flag, inline, &mut it)?)?),
            "--loss" => o.only.push(value(&flag, inline, &mut it)?),
            f => return Err(Fail::usage(format!("bench: unknown argument '{f}'"))),
        }
    }
    if o.shapes.is_empty() {
        o.shapes = if quick { QUICK_SHAPES } else { SHAPES }.to_vec();
    }
    if o.fixed.is_empty() {
        o.fixed = default_fixed(quick);
    }
    o.reps = reps.unwrap_or(if quick { 3 } else { 10 });
    o.extra
        .entry("D".into())
        .or_insert(if quick { 256 } else { 1024 });
    Ok(o)
}
