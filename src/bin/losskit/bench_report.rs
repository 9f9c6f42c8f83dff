//! The results of `losskit bench`: one [`Row`] per measurement, printed as a table and
//! written as JSON (read by `benches/compare_jax.py`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::roof::cpu_name;

/// How data reach the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Host (CPU memory) buffers passed to `Loss::compute`.
    Host,
    /// Device buffers (`lk_buffer`) on a WGPU context; the roof is a device copy.
    Device,
}

impl Path {
    /// The name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Path::Host => "host",
            Path::Device => "dev",
        }
    }
}

/// One line of results.
#[derive(Clone, Debug)]
pub struct Row {
    /// Loss id.
    pub loss: String,
    /// Backend name.
    pub backend: String,
    /// Data path.
    pub path: Path,
    /// Letter sizes.
    pub dims: BTreeMap<String, usize>,
    /// `NxV` label, or the letter sizes of a fixed-size case.
    pub shape: String,
    /// Best time per call, ms.
    pub best_ms: f64,
    /// Median time per call, ms.
    pub median_ms: f64,
    /// Bytes moved per call (inputs read once + gradients written once).
    pub bytes: f64,
    /// Model FLOPs per call, when the loss is compute-bound.
    pub flops: Option<f64>,
    /// Best time of the in-place scale over the same buffer, ms.
    pub roof_ms: f64,
    /// Bytes the in-place scale moves (read + write).
    pub roof_bytes: f64,
    /// Loss value of the first call (sanity).
    pub first_loss: f32,
    /// Share of the best call's wall time x threads that the process's threads ran (Linux;
    /// well below 1 means other processes took the CPUs and the figure is pessimistic).
    pub on_cpu: Option<f64>,
    /// The same for the best in-place scale.
    pub roof_on_cpu: Option<f64>,
    /// Least CPU time per thread of one call (ms): an estimate of the undisturbed time when
    /// other processes share the CPUs.
    pub cpu_ms: Option<f64>,
    /// The same for the in-place scale.
    pub roof_cpu_ms: Option<f64>,
}

impl Row {
    /// Effective GB/s of the loss.
    pub fn gbps(&self) -> f64 {
        self.bytes / (self.best_ms * 1e-3) / 1e9
    }
    /// GB/s of the in-place scale.
    pub fn roof_gbps(&self) -> f64 {
        self.roof_bytes / (self.roof_ms * 1e-3) / 1e9
    }
    /// Loss GB/s over roof GB/s.
    pub fn ratio(&self) -> f64 {
        self.gbps() / self.roof_gbps()
    }
    /// The same ratio from CPU times instead of wall times.
    pub fn cpu_ratio(&self) -> Option<f64> {
        let (c, r) = (self.cpu_ms?, self.roof_cpu_ms?);
        Some((self.bytes / c) / (self.roof_bytes / r))
    }
    /// GFLOP/s, for a compute-bound loss.
    pub fn gflops(&self) -> Option<f64> {
        self.flops.map(|f| f / (self.best_ms * 1e-3) / 1e9)
    }
}

/// Print the results as a table, with the legend.
pub fn print_table(rows: &[Row]) {
    println!(
        "{:18} {:7} {:5} {:>12} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9}",
        "loss",
        "backend",
        "path",
        "shape",
        "best ms",
        "median ms",
        "GB/s",
        "roof GB/s",
        "of roof",
        "GFLOP/s"
    );
    for r in rows {
        println!("{}", table_line(r));
    }
    println!(
        "GB/s = (inputs read once + gradients written once) / best time; roof = in-place \
         a[i] = s*a[i] over the same buffer in the same run, all threads; on-CPU = share of \
         the best loss/roof call the threads actually ran (well below 100% = other processes \
         took the CPUs, and both ratios are only indicative; the last column is the ratio of \
         the threads' CPU times, which descheduling does not inflate)."
    );
    if rows.iter().any(|r| r.path == Path::Device) {
        println!(
            "path dev: inputs and gradients in device buffers; its roof is a compute-shader \
             copy of a buffer the size of the first input on the same device, same run."
        );
    }
}

fn table_line(r: &Row) -> String {
    // The bandwidth ratio means something only for memory-bound losses.
    let of_roof = match r.flops {
        None => format!("{:.0}%", 100.0 * r.ratio()),
        Some(_) => "-".into(),
    };
    let pct = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{:.0}%", 100.0 * v));
    format!(
        "{:18} {:7} {:5} {:>12} {:>9.2} {:>9.2} {:>8.1} {:>9.1} {:>8} {:>9} {:>11} {:>18}",
        r.loss,
        r.backend,
        r.path.name(),
        r.shape,
        r.best_ms,
        r.median_ms,
        r.gbps(),
        r.roof_gbps(),
        of_roof,
        r.gflops().map_or_else(|| "-".into(), |f| format!("{f:.1}")),
        format!("{}/{}", pct(r.on_cpu), pct(r.roof_on_cpu)),
        match r.flops {
            None => pct(r.cpu_ratio()),
            Some(_) => "-".into(),
        }
    )
}

/// One row as a JSON object (non-finite numbers become `null`).
fn row_json(r: &Row) -> Value {
    json!({
        "loss": r.loss,
        "backend": r.backend,
        "path": r.path.name(),
        "shape": r.shape,
        "dims": r.dims,
        "best_ms": r.best_ms,
        "median_ms": r.median_ms,
        "bytes": r.bytes,
        "gbps": r.gbps(),
        "roof_gbps": r.roof_gbps(),
        "ratio_to_roof": r.ratio(),
        "flops": r.flops,
        "loss_value": f64::from(r.first_loss),
        "on_cpu": r.on_cpu,
        "roof_on_cpu": r.roof_on_cpu,
        "cpu_ms": r.cpu_ms,
        "roof_cpu_ms": r.roof_cpu_ms,
        "ratio_to_roof_cpu_time": r.cpu_ratio(),
    })
}

/// The results as JSON: the machine, then one object per row.
pub fn to_json(rows: &[Row], threads: usize) -> String {
    let doc = json!({
        "machine": {
            "cpu": cpu_name(),
            "threads": threads,
            "kernels": losskit::backend::cpu::isa_name(),
        },
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
