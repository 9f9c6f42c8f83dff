//! The `losskit` command-line tool, run as a built binary: every subcommand, its error
//! cases (one line on stderr, non-zero exit) and a `.npy` round trip checked against the
//! library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use losskit::{Compute, Context, Reduction, Tensor, TensorMut};

fn losskit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_losskit"))
        .args(args)
        .output()
        .expect("the losskit binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = losskit(args);
    assert!(
        o.status.success(),
        "losskit {args:?} failed: {}",
        stderr(&o)
    );
    stdout(&o)
}

/// Runs, expects exit status `code`, and a single `losskit: error:` line containing `needle`.
#[track_caller]
fn fails(args: &[&str], code: i32, needle: &str) {
    let o = losskit(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "losskit {args:?}: stdout {} stderr {}",
        stdout(&o),
        stderr(&o)
    );
    let e = stderr(&o);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "losskit {args:?}: stderr is not one line: {e:?}"
    );
    assert!(lines[0].starts_with("losskit: error: "), "{e}");
    assert!(
        lines[0].contains(needle),
        "losskit {args:?}: '{}' does not mention '{needle}'",
        lines[0]
    );
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `.npy` file written independently of the CLI's writer.
fn npy(descr: &str, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if shape.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + h.len() + 1) % 16 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(payload);
    b
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Read a little-endian f32 `.npy` (as the CLI writes it): shape and values.
fn read_f32(p: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let h = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(h.contains("'descr': '<f4'"), "{h}");
    assert!(h.contains("'fortran_order': False"), "{h}");
    assert_eq!((10 + hl) % 64, 0, "data is 64-byte aligned");
    let s = &h[h.find("'shape': (").unwrap() + 10..];
    let s = &s[..s.find(')').unwrap()];
    let shape: Vec<usize> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    let v: Vec<f32> = b[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(v.len(), shape.iter().product::<usize>());
    (shape, v)
}

#[test]
fn list_shows_every_registered_loss() {
    let out = ok(&["list"]);
    assert!(out.starts_with("id"), "{out}");
    for d in Context::cpu().losses() {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(d.spec.id.as_str()))
            .unwrap_or_else(|| panic!("{} missing from list:\n{out}", d.spec.id));
        assert!(line.contains(d.spec.family.as_str()), "{line}");
    }
    fails(&["list", "extra"], 2, "no arguments");
}

#[test]
fn describe_shows_inputs_params_and_aux() {
    let out = ok(&["describe", "cross_entropy"]);
    for needle in [
        "cross_entropy (classification)",
        "source:",
        "logits",
        "[N,C]",
        "grad",
        "target",
        "class in [0, C)",
        "class_weights",
        "optional",
        "label_smoothing",
        "default 0",
        "range [0, 1]",
        "ignore_index",
        "default -100",
        "auxiliary outputs:",
        "lse",
        "batch-level: no",
    ] {
        assert!(out.contains(needle), "'{needle}' missing:\n{out}");
    }
    fails(&["describe", "no_such_loss"], 1, "no_such_loss");
    fails(&["describe"], 2, "usage");
}

#[test]
fn global_options_and_usage_errors() {
    fails(&[], 2, "no command");
    fails(&["frobnicate"], 2, "unknown command 'frobnicate'");
    fails(&["--backend", "tpu", "list"], 2, "--backend 'tpu'");
    fails(&["list", "--backend"], 2, "--backend needs a value");
    assert!(ok(&["--backend", "cpu", "list"]).contains("cross_entropy"));
    assert!(ok(&["list", "--backend=auto"]).contains("cross_entropy"));
    assert!(ok(&["--help"]).contains("usage: losskit"));
    assert!(ok(&["--version"]).starts_with("losskit "));
    // A plugin that does not exist fails before the command runs, whatever the build.
    let o = losskit(&["--plugin", "/nonexistent/libnothing.so", "list"]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn gradcheck_passes_and_can_fail() {
    let out = ok(&["gradcheck", "cross_entropy"]);
    assert!(out.contains("logits"), "{out}");
    assert!(out.contains(" ok"), "{out}");
    let out = ok(&[
        "gradcheck",
        "cross_entropy",
        "label_smoothing=0.1",
        "z_loss_coef=0.01",
        "--reduction",
        "sum",
        "--seed",
        "7",
        "--size",
        "N=4,C=9",
    ]);
    assert!(out.contains("reduction sum, seed 7"), "{out}");
    assert!(out.contains("C=9,N=4"), "{out}");
    // A gradient that is not the derivative of the value (steer's detached token weights)
    // makes the check fail with a non-zero status, and the output says why.
    let o = losskit(&["gradcheck", "steer", "--seed", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("FAIL"));
    assert!(stdout(&o).contains("surrogate by design"));
    fails(
        &["gradcheck", "cross_entropy", "label_smoothing=2"],
        1,
        "label_smoothing",
    );
    fails(&["gradcheck", "cross_entropy", "bogus=1"], 1, "bogus");
    fails(
        &["gradcheck", "cross_entropy", "--reduction", "max"],
        2,
        "max",
    );
    fails(&["gradcheck", "cross_entropy", "--seed", "x"], 2, "--seed");
    fails(&["gradcheck", "nope"], 1, "nope");
}

#[test]
fn run_round_trips_npy_and_matches_the_library() {
    let d = tmp("run");
    let logits: Vec<f32> = (0..15).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.2).collect();
    let target = [4i64, 0, 2];
    std::fs::write(
        d.join("logits.npy"),
        npy("<f4", &[3, 5], &f32_bytes(&logits)),
    )
    .unwrap();
    let tb: Vec<u8> = target.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(d.join("target.npy"), npy("<i8", &[3], &tb)).unwrap();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    ok(&[
        "run",
        "cross_entropy",
        "--input",
        &format!("logits={}", p("logits.npy")),
        "--input",
        &format!("target={}", p("target.npy")),
        "--grad",
        &format!("logits={}", p("grad.npy")),
        "--aux",
        &format!("lse={}", p("lse.npy")),
        "--loss",
        &p("loss.npy"),
        "label_smoothing=0.1",
    ]);
    // The same call through the library.
    let mut ce = Context::cpu().loss("cross_entropy").unwrap();
    ce.set_f64("label_smoothing", 0.1).unwrap();
    let mut loss = [0.0f32];
    let mut grad = [0.0f32; 15];
    let mut lse = [0.0f32; 3];
    {
        let mut c = Compute::new(Reduction::Mean, &mut loss)
            .input(Tensor::f32(&logits, &[3, 5]))
            .input(Tensor::i64(&target, &[3]))
            .grad(0, TensorMut::new(&mut grad, &[3, 5]))
            .aux("lse", TensorMut::new(&mut lse, &[3]));
        ce.compute(&mut c).unwrap();
    }
    let (s, l) = read_f32(&d.join("loss.npy"));
    assert_eq!(s, Vec::<usize>::new());
    assert_eq!(l, loss.to_vec());
    let (s, g) = read_f32(&d.join("grad.npy"));
    assert_eq!(s, vec![3, 5]);
    assert_eq!(g, grad.to_vec());
    let (s, a) = read_f32(&d.join("lse.npy"));
    assert_eq!(s, vec![3]);
    assert_eq!(a, lse.to_vec());

    // f64 logits and i32 targets are read too; `none` prints one loss per row.
    let l64: Vec<u8> = logits
        .iter()
        .flat_map(|&x| (x as f64).to_le_bytes())
        .collect();
    std::fs::write(d.join("logits64.npy"), npy("<f8", &[3, 5], &l64)).unwrap();
    let t32: Vec<u8> = target
        .iter()
        .flat_map(|&x| (x as i32).to_le_bytes())
        .collect();
    std::fs::write(d.join("target32.npy"), npy("<i4", &[3], &t32)).unwrap();
    let out = ok(&[
        "run",
        "cross_entropy",
        "--input",
        &format!("logits={}", p("logits64.npy")),
        "--input",
        &format!("target={}", p("target32.npy")),
        "--reduction",
        "none",
    ]);
    let rows: Vec<f32> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(rows.len(), 3);
    let mean = rows.iter().map(|&v| v as f64).sum::<f64>() / 3.0;
    let mut plain = [0.0f32];
    {
        let ce = Context::cpu().loss("cross_entropy").unwrap();
        let mut c = Compute::new(Reduction::Mean, &mut plain)
            .input(Tensor::f32(&logits, &[3, 5]))
            .input(Tensor::i64(&target, &[3]));
        ce.compute(&mut c).unwrap();
    }
    assert!(
        (mean - plain[0] as f64).abs() < 1e-5,
        "{mean} vs {}",
        plain[0]
    );
}

#[test]
fn run_reports_bad_input_in_one_line() {
    let d = tmp("run_errors");
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let logits = f32_bytes(&[0.5; 6]);
    std::fs::write(d.join("l.npy"), npy("<f4", &[2, 3], &logits)).unwrap();
    let tb: Vec<u8> = [0i64, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(d.join("t.npy"), npy("<i8", &[2], &tb)).unwrap();
    let t3: Vec<u8> = [0i64, 1, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(d.join("t3.npy"), npy("<i8", &[3], &t3)).unwrap();
    std::fs::write(d.join("u16.npy"), npy("<u2", &[2], &[0; 4])).unwrap();
    std::fs::write(d.join("junk.npy"), b"not numpy at all").unwrap();
    let li = format!("logits={}", p("l.npy"));
    fails(
        &["run", "cross_entropy", "--input", &li],
        2,
        "required input 'target'",
    );
    let ti = format!("target={}", p("t.npy"));
    fails(
        &["run", "cross_entropy", "--input", &li, "--input", &ti],
        1,
        "target[1] = 7",
    );
    let t3i = format!("target={}", p("t3.npy"));
    fails(
        &["run", "cross_entropy", "--input", &li, "--input", &t3i],
        1,
        "target",
    );
    fails(
        &[
            "run",
            "cross_entropy",
            "--input",
            &format!("logits={}", p("junk.npy")),
        ],
        1,
        "junk.npy",
    );
    fails(
        &[
            "run",
            "cross_entropy",
            "--input",
            &format!("logits={}", p("u16.npy")),
        ],
        1,
        "not supported",
    );
    fails(
        &[
            "run",
            "cross_entropy",
            "--input",
            &format!("target={}", p("l.npy")),
        ],
        1,
        "must be i64",
    );
    fails(
        &[
            "run",
            "cross_entropy",
            "--input",
            &format!("logits={}", p("missing.npy")),
        ],
        1,
        "missing.npy",
    );
    fails(
        &["run", "cross_entropy", "--input", "weights=x.npy"],
        2,
        "no input 'weights'",
    );
    fails(
        &[
            "run",
            "cross_entropy",
            "--input",
            &li,
            "--grad",
            "target=g.npy",
        ],
        2,
        "not differentiable",
    );
    fails(
        &["run", "cross_entropy", "--input", "nonsense"],
        2,
        "NAME=VALUE",
    );
    fails(&["run"], 2, "usage");
}

#[test]
fn demo_runs_quickly_and_writes_a_plot() {
    let d = tmp("demo");
    let out = ok(&[
        "demo",
        "--quick",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(out.contains("clean test accuracy"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("cross_entropy"))
        .unwrap_or_else(|| panic!("no cross_entropy row:\n{out}"));
    let accs: Vec<f64> = row
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(accs.len(), 3, "{row}");
    // Two epochs already beat chance (10%) by far on clean labels.
    assert!(accs[0] > 50.0, "{row}");
    let svg = std::fs::read_to_string(d.join("losskit_demo.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline"));
    // Seeded: the same command prints the same table.
    let again = ok(&[
        "demo",
        "--quick",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--out",
        d.to_str().unwrap(),
    ]);
    let table = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("training curves"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(table(&out), table(&again));
    fails(&["demo", "--epochs", "0"], 2, "--epochs");
}

#[test]
fn bench_prints_a_table_and_json() {
    let d = tmp("bench");
    let j = d.join("b.json");
    let out = ok(&[
        "bench",
        "--shapes",
        "16x1000",
        "--reps",
        "2",
        "--json",
        j.to_str().unwrap(),
    ]);
    assert!(out.contains("cross_entropy"), "{out}");
    assert!(out.contains("16x1000"), "{out}");
    let json = std::fs::read_to_string(&j).unwrap();
    for key in [
        "\"machine\"",
        "\"loss\": \"cross_entropy\"",
        "\"best_ms\"",
        "\"gbps\"",
        "\"roof_gbps\"",
        "\"ratio_to_roof\"",
    ] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    fails(&["bench", "--shapes", "4096by32000"], 2, "NxV");
    fails(&["bench", "--loss", "nope"], 1, "nope");
}

/// Builds the C example plugin (plugins/example_c/asl.c) into the target directory.
fn asl_plugin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().join("cli-plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("libasl-{}.so", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let res = Command::new(&cc)
        .args(["-std=c99", "-O2", "-shared", "-fPIC", "-I"])
        .arg(root.join("include"))
        .arg("-o")
        .arg(&out)
        .arg(root.join("plugins/example_c/asl.c"))
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

#[test]
fn plugin_losses_are_listed_described_and_gradient_checked() {
    let lib = asl_plugin();
    let p = lib.to_str().unwrap();
    let list = ok(&["--plugin", p, "list"]);
    assert!(list.contains("asymmetric_loss"), "{list}");
    assert!(list.contains("cross_entropy"), "{list}");
    let d = ok(&["--plugin", p, "describe", "asymmetric_loss"]);
    assert!(d.contains("logits"), "{d}");
    let g = ok(&["--plugin", p, "gradcheck", "asymmetric_loss"]);
    assert!(g.contains("logits"), "{g}");
    fails(
        &["--plugin", "./no/such/libplugin.so", "list"],
        1,
        "no/such/libplugin.so",
    );
    let _ = std::fs::remove_file(&lib);
}
