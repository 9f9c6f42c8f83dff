//! `losskit demo`: the robustness-to-label-noise claim of the generalized cross-entropy and
//! label-distributionally-robust papers, reproduced in under a minute on a CPU.
//!
//! A one-hidden-layer MLP (64-64-10, ReLU) is trained with plain minibatch SGD on the 8x8
//! handwritten digits (embedded, see `data/README.md`) whose *training* labels have been
//! corrupted by symmetric noise (a fraction of the labels replaced by a uniformly chosen
//! other class), once per loss and noise level. The loss value and the gradient of the loss
//! with respect to the logits come from losskit; the model's backward pass is written out
//! by hand. The table reports accuracy on the clean test labels; an SVG plots the curves.
//!
//! Everything is seeded: the split, the noise, the initialisation and the batch order
//! derive from `--seed`, and each run is sequential, so the output does not depend on the
//! number of threads (runs execute in parallel with each other).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use losskit::testing::Rng;
use losskit::{Compute, DType, Domain, Loss, Reduction, Tensor, TensorMut};
use rayon::prelude::*;

use crate::progress::Progress;
use crate::{CliResult, Fail, Global, value};

const DIGITS: &[u8] = include_bytes!("data/digits.bin");
const FEATURES: usize = 64;
const CLASSES: usize = 10;
const HIDDEN: usize = 64;
const BATCH: usize = 32;
const LR: f32 = 0.1;
const TRAIN: usize = 1347;
const NOISE: &[f64] = &[0.0, 0.2, 0.4];

/// One loss of the demo: table label, registry id, parameters as `name=value` text.
pub type DemoLoss = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The losses the demo trains with, in table order.
pub const LOSSES: &[DemoLoss] = &[
    ("cross_entropy", "cross_entropy", &[]),
    ("focal (gamma 2)", "focal", &[("gamma", "2")]),
    (
        "comp_sum gce (q 0.7)",
        "comp_sum",
        &[("kind", "gce"), ("q", "0.7")],
    ),
    ("comp_sum mae", "comp_sum", &[("kind", "mae")]),
    ("ldr_kl", "ldr_kl", &[]),
    ("aldr_kl", "aldr_kl", &[]),
    ("symmetric_ce", "symmetric_ce", &[]),
];

/// The decoded data set: pixels scaled to [0, 1] and labels.
pub struct Digits {
    /// `[n, 64]` row-major.
    pub x: Vec<f32>,
    /// Labels 0..9.
    pub y: Vec<u8>,
}

/// Decode the embedded `digits.bin` (format in `data/make_digits.py`).
pub fn digits() -> CliResult<Digits> {
    let b = DIGITS;
    if b.len() < 6 || &b[..4] != b"LKDG" {
        return Err("embedded digits data: bad magic".into());
    }
    let n = u16::from_le_bytes([b[4], b[5]]) as usize;
    const REC: usize = 41;
    if b.len() != 6 + n * REC {
        return Err("embedded digits data: wrong length".into());
    }
    let mut x = Vec::with_capacity(n * FEATURES);
    let mut y = Vec::with_capacity(n);
    for r in b[6..].chunks_exact(REC) {
        if r[0] as usize >= CLASSES {
            return Err("embedded digits data: label out of range".into());
        }
        y.push(r[0]);
        let mut bits = [0u8; 48];
        bits[..40].copy_from_slice(&r[1..]);
        for k in 0..FEATURES {
            let bit = 5 * k;
            let word = u16::from_le_bytes([bits[bit / 8], bits[bit / 8 + 1]]);
            let v = (word >> (bit % 8)) & 0x1F;
            if v > 16 {
                return Err("embedded digits data: pixel out of range".into());
            }
            x.push(v as f32 / 16.0);
        }
    }
    Ok(Digits { x, y })
}

/// Fisher-Yates shuffle of `0..n`.
fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

/// Symmetric label noise: exactly `round(rate * n)` labels, chosen at random, are replaced by
/// a uniformly chosen *different* class.
pub fn add_noise(y: &[u8], rate: f64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = y.to_vec();
    let k = (rate * y.len() as f64).round() as usize;
    for &i in permutation(y.len(), &mut rng).iter().take(k) {
        let shift = 1 + rng.below(CLASSES as u64 - 1) as u8;
        out[i] = (y[i] + shift) % CLASSES as u8;
    }
    out
}

/// The MLP 64 -> HIDDEN (ReLU) -> 10.
#[derive(Clone)]
struct Mlp {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Mlp {
    fn new(rng: &mut Rng) -> Self {
        let s1 = (2.0 / FEATURES as f64).sqrt();
        let s2 = (1.0 / HIDDEN as f64).sqrt();
        Mlp {
            w1: (0..FEATURES * HIDDEN)
                .map(|_| (s1 * rng.normal()) as f32)
                .collect(),
            b1: vec![0.0; HIDDEN],
            w2: (0..HIDDEN * CLASSES)
                .map(|_| (s2 * rng.normal()) as f32)
                .collect(),
            b2: vec![0.0; CLASSES],
        }
    }

    /// Hidden activations `[b, H]` and logits `[b, 10]` of `x [b, 64]`.
    fn forward(&self, x: &[f32], h: &mut Vec<f32>, z: &mut Vec<f32>) {
        let b = x.len() / FEATURES;
        h.clear();
        z.clear();
        for r in 0..b {
            let xr = &x[r * FEATURES..(r + 1) * FEATURES];
            let mut hr = self.b1.clone();
            for (i, &xi) in xr.iter().enumerate() {
                if xi != 0.0 {
                    for (o, &w) in hr.iter_mut().zip(&self.w1[i * HIDDEN..(i + 1) * HIDDEN]) {
                        *o += xi * w;
                    }
                }
            }
            for v in hr.iter_mut() {
                *v = v.max(0.0);
            }
            let mut zr = self.b2.clone();
            for (j, &hj) in hr.iter().enumerate() {
                if hj != 0.0 {
                    for (o, &w) in zr.iter_mut().zip(&self.w2[j * CLASSES..(j + 1) * CLASSES]) {
                        *o += hj * w;
                    }
                }
            }
            h.extend_from_slice(&hr);
            z.extend_from_slice(&zr);
        }
    }

    /// One SGD step given `dz = dLoss/dlogits`.
    fn backward_step(&mut self, x: &[f32], h: &[f32], dz: &[f32], lr: f32) {
        let b = x.len() / FEATURES;
        let mut dh = vec![0.0f32; HIDDEN];
        let mut gw2 = vec![0.0f32; HIDDEN * CLASSES];
        let mut gb2 = [0.0f32; CLASSES];
        let mut gw1 = vec![0.0f32; FEATURES * HIDDEN];
        let mut gb1 = vec![0.0f32; HIDDEN];
        for r in 0..b {
            let hr = &h[r * HIDDEN..(r + 1) * HIDDEN];
            let dzr = &dz[r * CLASSES..(r + 1) * CLASSES];
            for (g, &d) in gb2.iter_mut().zip(dzr) {
                *g += d;
            }
            for (j, &hj) in hr.iter().enumerate() {
                let wrow = &self.w2[j * CLASSES..(j + 1) * CLASSES];
                let mut acc = 0.0f32;
                for (c, &d) in dzr.iter().enumerate() {
                    gw2[j * CLASSES + c] += hj * d;
                    acc += wrow[c] * d;
                }
                dh[j] = if hj > 0.0 { acc } else { 0.0 };
            }
            let xr = &x[r * FEATURES..(r + 1) * FEATURES];
            for (g, &d) in gb1.iter_mut().zip(&dh) {
                *g += d;
            }
            for (i, &xi) in xr.iter().enumerate() {
                if xi != 0.0 {
                    for (g, &d) in gw1[i * HIDDEN..(i + 1) * HIDDEN].iter_mut().zip(&dh) {
                        *g += xi * d;
                    }
                }
            }
        }
        let step = |p: &mut [f32], g: &[f32]| {
            for (w, &d) in p.iter_mut().zip(g) {
                *w -= lr * d;
            }
        };
        step(&mut self.w1, &gw1);
        step(&mut self.b1, &gb1);
        step(&mut self.w2, &gw2);
        step(&mut self.b2, &gb2);
    }

    fn accuracy(&self, x: &[f32], y: &[u8]) -> f64 {
        let (mut h, mut z) = (Vec::new(), Vec::new());
        self.forward(x, &mut h, &mut z);
        let right = z
            .chunks_exact(CLASSES)
            .zip(y)
            .filter(|(zr, yi)| {
                let mut best = 0;
                for c in 1..CLASSES {
                    if zr[c] > zr[best] {
                        best = c;
                    }
                }
                best == **yi as usize
            })
            .count();
        right as f64 / y.len().max(1) as f64
    }
}

/// The curves of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Clean test accuracy after each epoch.
    pub test_acc: Vec<f64>,
    /// Mean training loss (on the noisy labels) of each epoch.
    pub train_loss: Vec<f64>,
}

struct Split {
    xtr: Vec<f32>,
    ytr: Vec<u8>,
    xte: Vec<f32>,
    yte: Vec<u8>,
}

fn split(d: &Digits, seed: u64) -> Split {
    let mut rng = Rng::new(seed ^ 0x5EED_0001);
    let p = permutation(d.y.len(), &mut rng);
    let take = |idx: &[usize]| -> (Vec<f32>, Vec<u8>) {
        let mut x = Vec::with_capacity(idx.len() * FEATURES);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.extend_from_slice(&d.x[i * FEATURES..(i + 1) * FEATURES]);
            y.push(d.y[i]);
        }
        (x, y)
    };
    let train = TRAIN.min(d.y.len());
    let (xtr, ytr) = take(&p[..train]);
    let (xte, yte) = take(&p[train..]);
    Split { xtr, ytr, xte, yte }
}

/// Train one model with `loss` on labels `ylab`, `epochs` epochs.
fn train(
    loss: &Loss,
    s: &Split,
    ylab: &[u8],
    epochs: usize,
    seed: u64,
    tick: &(dyn Fn() + Sync),
) -> CliResult<RunResult> {
    let mut rng = Rng::new(seed ^ 0x1417);
    let mut model = Mlp::new(&mut rng);
    let n = ylab.len();
    let mut out = RunResult {
        test_acc: Vec::with_capacity(epochs),
        train_loss: Vec::with_capacity(epochs),
    };
    let (mut h, mut z) = (Vec::new(), Vec::new());
    let mut xb: Vec<f32> = Vec::with_capacity(BATCH * FEATURES);
    let mut tb: Vec<i64> = Vec::with_capacity(BATCH);
    let mut dz = vec![0.0f32; BATCH * CLASSES];
    let total_steps = epochs * n.div_ceil(BATCH);
    let mut step = 0usize;
    for _ in 0..epochs {
        let order = permutation(n, &mut rng);
        let mut sum = 0.0f64;
        let mut batches = 0usize;
        for chunk in order.chunks(BATCH) {
            xb.clear();
            tb.clear();
            for &i in chunk {
                xb.extend_from_slice(&s.xtr[i * FEATURES..(i + 1) * FEATURES]);
                tb.push(ylab[i] as i64);
            }
            let b = chunk.len();
            model.forward(&xb, &mut h, &mut z);
            let mut lv = [0.0f32];
            let g = &mut dz[..b * CLASSES];
            {
                let mut c = Compute::new(Reduction::Mean, &mut lv)
                    .input(Tensor::f32(&z, &[b, CLASSES]))
                    .input(Tensor::i64(&tb, &[b]))
                    .grad(0, TensorMut::new(g, &[b, CLASSES]));
                loss.compute(&mut c)?;
            }
            // Cosine decay of the learning rate to zero over the run.
            let t = step as f32 / total_steps.max(1) as f32;
            let lr = LR * 0.5 * (1.0 + (std::f32::consts::PI * t).cos());
            model.backward_step(&xb, &h, g, lr);
            sum += lv[0] as f64;
            batches += 1;
            step += 1;
        }
        out.train_loss.push(sum / batches.max(1) as f64);
        out.test_acc.push(model.accuracy(&s.xte, &s.yte));
        tick();
    }
    Ok(out)
}

/// Why a registered loss cannot train this classifier, if it cannot: its required inputs must
/// be exactly `logits [N,C]` f32 (differentiable) and `target [N]` i64 class indices.
pub fn misfit(loss: &Loss) -> Option<String> {
    let spec = &loss.def().spec;
    let req: Vec<_> = spec.inputs.iter().filter(|i| !i.optional).collect();
    let fits = req.len() == 2
        && spec.inputs[0].dtype == DType::F32
        && spec.inputs[0].differentiable
        && spec.inputs[0].dims().len() == 2
        && spec.inputs[1].dtype == DType::I64
        && matches!(spec.inputs[1].domain, Domain::Class(_))
        && spec.inputs[1].dims().len() == 1
        && !spec.batch_level;
    if fits {
        None
    } else {
        let names: Vec<String> = req
            .iter()
            .map(|i| format!("{} [{}] {}", i.name, i.shape, i.dtype.name()))
            .collect();
        Some(format!(
            "its inputs are ({}), not (logits [N,C] f32, target [N] i64)",
            names.join(", ")
        ))
    }
}

struct Opts {
    quick: bool,
    epochs: Option<usize>,
    seed: u64,
    out: PathBuf,
}

fn parse_opts(args: &[String]) -> CliResult<Opts> {
    let mut o = Opts {
        quick: false,
        epochs: None,
        seed: 1,
        out: PathBuf::from("."),
    };
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--seed" => {
                let v = value(&flag, inline, &mut it)?;
                o.seed = v
                    .parse()
                    .map_err(|_| Fail::usage(format!("--seed '{v}' is not an integer")))?;
            }
            "--epochs" => {
                let v = value(&flag, inline, &mut it)?;
                o.epochs = Some(v.parse::<usize>().ok().filter(|e| *e > 0).ok_or_else(|| {
                    Fail::usage(format!("--epochs '{v}' is not a positive integer"))
                })?);
            }
            "--out" => o.out = PathBuf::from(value(&flag, inline, &mut it)?),
            f => return Err(Fail::usage(format!("demo: unknown argument '{f}'"))),
        }
    }
    Ok(o)
}

/// `losskit demo [--quick] [--epochs E] [--seed S] [--out DIR]`
pub fn main(g: &Global, args: &[String]) -> CliResult {
    let o = parse_opts(args)?;
    let epochs = o.epochs.unwrap_or(if o.quick { 100 } else { 300 });
    let data = digits()?;
    let s = split(&data, o.seed);
    // Which losses run, and why the others do not.
    let mut runs: Vec<(&str, Loss)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (label, id, params) in LOSSES {
        let mut loss = match g.ctx.loss(id) {
            Ok(l) => l,
            Err(_) => {
                notes.push(format!("{id}: not in this build's registry"));
                continue;
            }
        };
        if let Some(why) = misfit(&loss) {
            notes.push(format!("{id}: skipped, {why}"));
            continue;
        }
        let mut ok = true;
        for (k, v) in params.iter() {
            if let Err(e) = loss.set_text(k, v) {
                notes.push(format!("{id}: skipped, cannot set {k}={v}: {}", e.msg));
                ok = false;
                break;
            }
        }
        if ok {
            runs.push((label, loss));
        }
    }
    if runs.is_empty() {
        return Err("demo: no usable loss in the registry".into());
    }
    println!(
        "losskit demo: 8x8 handwritten digits (UCI, CC BY 4.0), {} train / {} test; MLP 64-{HIDDEN}-10 \
         (ReLU), SGD batch {BATCH}, lr {LR} cosine-decayed, {epochs} epochs; symmetric label noise \
         on the training labels only; seed {}; backend {}",
        s.ytr.len(),
        s.yte.len(),
        o.seed,
        g.ctx.backend().name()
    );
    let jobs: Vec<(usize, usize)> = (0..runs.len())
        .flat_map(|l| (0..NOISE.len()).map(move |k| (l, k)))
        .collect();
    let noisy: Vec<Vec<u8>> = NOISE
        .iter()
        .enumerate()
        .map(|(k, &r)| add_noise(&s.ytr, r, o.seed.wrapping_mul(31).wrapping_add(k as u64)))
        .collect();
    let bar = Mutex::new(Progress::new(jobs.len() * epochs, "demo"));
    let tick = || {
        if let Ok(mut b) = bar.lock() {
            b.inc("");
        }
    };
    let t0 = Instant::now();
    let results: Vec<CliResult<RunResult>> = jobs
        .par_iter()
        .map(|&(l, k)| {
            train(
                &runs[l].1,
                &s,
                &noisy[k],
                epochs,
                o.seed.wrapping_add(k as u64),
                &tick,
            )
        })
        .collect();
    if let Ok(b) = bar.into_inner() {
        b.finish();
    }
    let mut res: Vec<Vec<RunResult>> = vec![Vec::new(); runs.len()];
    for (&(l, _), r) in jobs.iter().zip(results) {
        res[l].push(r?);
    }
    print!(
        "{}",
        table(&runs.iter().map(|r| r.0).collect::<Vec<_>>(), &res)
    );
    for n in &notes {
        println!("note: {n}");
    }
    std::fs::create_dir_all(&o.out)
        .map_err(|e| Fail::from(format!("cannot create '{}': {e}", o.out.display())))?;
    let svg_path = o.out.join("losskit_demo.svg");
    let labels: Vec<&str> = runs.iter().map(|r| r.0).collect();
    std::fs::write(&svg_path, svg(&labels, &res, epochs))
        .map_err(|e| Fail::from(format!("cannot write '{}': {e}", svg_path.display())))?;
    println!(
        "training curves: {} ({:.1} s)",
        svg_path.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The results table: clean test accuracy after the last epoch per loss and noise level.
fn table(labels: &[&str], res: &[Vec<RunResult>]) -> String {
    let w = labels.iter().map(|l| l.len()).max().unwrap_or(4).max(4);
    let mut o = String::new();
    let _ = writeln!(o, "clean test accuracy (%) after the last epoch:");
    let _ = write!(o, "{:w$}", "loss");
    for r in NOISE {
        let _ = write!(o, "  {:>9}", format!("noise {:.0}%", r * 100.0));
    }
    let _ = writeln!(o);
    for (l, rr) in labels.iter().zip(res) {
        let _ = write!(o, "{l:w$}");
        for r in rr {
            let acc = r.test_acc.last().copied().unwrap_or(0.0);
            let _ = write!(o, "  {:>9.1}", 100.0 * acc);
        }
        let _ = writeln!(o);
    }
    o
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];

/// One panel per noise level: clean test accuracy against epoch, one line per loss.
fn svg(labels: &[&str], res: &[Vec<RunResult>], epochs: usize) -> String {
    let (pw, ph, m) = (380.0f64, 300.0f64, 50.0f64);
    let width = m + NOISE.len() as f64 * (pw + m);
    let legend_rows = labels.len().div_ceil(NOISE.len());
    let height = ph + 2.0 * m + 30.0 + 22.0 * legend_rows as f64;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(o, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let (lo, hi) = (0.0f64, 1.0f64);
    for (k, rate) in NOISE.iter().enumerate() {
        let x0 = m + k as f64 * (pw + m);
        let y0 = m;
        let px = |e: usize| x0 + pw * (e as f64 + 1.0) / epochs.max(1) as f64;
        let py = |a: f64| y0 + ph * (1.0 - (a - lo) / (hi - lo));
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"14\">symmetric label noise {:.0}%</text>",
            x0 + pw / 2.0,
            y0 - 12.0,
            rate * 100.0
        );
        for t in 0..=5 {
            let a = t as f64 / 5.0;
            let y = py(a);
            let _ = writeln!(
                o,
                "<line x1=\"{x0:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>",
                x0 + pw,
                x0 - 4.0,
                y + 4.0,
                a * 100.0
            );
        }
        let _ = writeln!(
            o,
            "<rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{pw:.1}\" height=\"{ph:.1}\" fill=\"none\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">epoch</text>",
            x0 + pw / 2.0,
            y0 + ph + 32.0
        );
        for t in 0..=4 {
            let e = epochs * t / 4;
            let x = x0 + pw * e as f64 / epochs.max(1) as f64;
            let _ = writeln!(
                o,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{e}</text>",
                y0 + ph,
                y0 + ph + 4.0,
                y0 + ph + 16.0
            );
        }
        if k == 0 {
            let _ = writeln!(
                o,
                "<text transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">clean test accuracy</text>",
                y0 + ph / 2.0
            );
        }
        for (l, rr) in res.iter().enumerate() {
            let Some(r) = rr.get(k) else { continue };
            let pts: Vec<String> = r
                .test_acc
                .iter()
                .enumerate()
                .map(|(e, &a)| format!("{:.1},{:.1}", px(e), py(a.clamp(lo, hi))))
                .collect();
            let _ = writeln!(
                o,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                COLORS[l % COLORS.len()],
                pts.join(" ")
            );
        }
    }
    for (l, name) in labels.iter().enumerate() {
        let x = m + (l % NOISE.len()) as f64 * (pw + m);
        let y = m + ph + 56.0 + 22.0 * (l / NOISE.len()) as f64;
        let _ = writeln!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 30.0,
            COLORS[l % COLORS.len()],
            x + 38.0,
            y + 4.0,
            xml_escape(name)
        );
    }
    o.push_str("</svg>\n");
    o
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_match_the_source() {
        let d = digits().unwrap();
        assert_eq!(d.y.len(), 1797);
        assert_eq!(&d.y[..5], &[0, 1, 2, 3, 4]);
        let first: Vec<u32> = d.x[..FEATURES].iter().map(|v| (v * 16.0) as u32).collect();
        assert_eq!(&first[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
        let total: f64 = d.x.iter().map(|&v| (v * 16.0) as f64).sum();
        assert_eq!(total, 561718.0);
        let mut counts = [0usize; 10];
        for &y in &d.y {
            counts[y as usize] += 1;
        }
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }

    #[test]
    fn noise_flips_exactly_the_asked_fraction_to_other_classes() {
        let y: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
        let n = add_noise(&y, 0.4, 3);
        assert_eq!(y.iter().zip(&n).filter(|(a, b)| a != b).count(), 400);
        assert_eq!(add_noise(&y, 0.4, 3), n);
        assert_eq!(add_noise(&y, 0.0, 3), y);
    }
}
