//! `losskit`: the command-line face of the loss registry.
//!
//! ```text
//! losskit [--backend cpu|wgpu|auto] [--plugin PATH]... COMMAND ...
//!   list                      every loss: id, family, summary
//!   describe ID               inputs, parameters, auxiliary outputs, source
//!   gradcheck ID [name=value ...] [--reduction R] [--seed S] [--size L=n,...] [--tol T]
//!   run ID --input NAME=FILE.npy ... [--grad NAME=OUT.npy] [--aux NAME=OUT.npy]
//!          [--loss OUT.npy] [--reduction R] [name=value ...]
//!   demo [--quick] [--seed S] [--out DIR]
//!   bench [--json FILE] [--shapes NxV,...] [--loss ID]... [--case ID:L=n,...]... [--quick] [--reps K]
//! ```
//!
//! Every error is one line on stderr (`losskit: error: ...`) and a non-zero exit status:
//! 2 for a usage error, 1 for anything else.

// The modules live in src/bin/losskit/ (a crate root's modules resolve next to it).
#[path = "losskit/bench.rs"]
mod bench;
#[path = "losskit/commands.rs"]
mod commands;
#[path = "losskit/demo.rs"]
mod demo;
#[path = "losskit/npy.rs"]
mod npy;
#[path = "losskit/progress.rs"]
mod progress;

use losskit::{BackendKind, Context};

/// A failure: a one-line message and the exit status.
#[derive(Debug)]
pub struct Fail {
    msg: String,
    code: i32,
}

impl Fail {
    /// A usage error (exit status 2).
    pub fn usage(msg: impl Into<String>) -> Self {
        Fail {
            msg: msg.into(),
            code: 2,
        }
    }
}

impl From<String> for Fail {
    fn from(msg: String) -> Self {
        Fail { msg, code: 1 }
    }
}

impl From<&str> for Fail {
    fn from(msg: &str) -> Self {
        Fail {
            msg: msg.into(),
            code: 1,
        }
    }
}

impl From<losskit::LkError> for Fail {
    fn from(e: losskit::LkError) -> Self {
        Fail {
            msg: e.msg,
            code: 1,
        }
    }
}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, Fail>;

const USAGE: &str = "\
usage: losskit [--backend cpu|wgpu|auto] [--plugin PATH]... COMMAND ...

commands:
  list                         every loss: id, family, summary
  describe ID                  inputs, parameters, auxiliary outputs and source of a loss
  gradcheck ID [name=value ...] [--reduction none|mean|sum] [--seed S] [--size L=n,...] [--tol T]
                               analytic gradients against finite differences on random inputs
  run ID --input NAME=FILE.npy ... [--grad NAME=OUT.npy] [--aux NAME=OUT.npy] [--loss OUT.npy]
         [--reduction none|mean|sum] [name=value ...]
                               compute a loss on .npy inputs
  demo [--quick] [--seed S] [--out DIR]
                               train a digit classifier under label noise, once per loss
  bench [--json FILE] [--shapes NxV,...] [--loss ID]... [--case ID:L=n,...]... [--quick] [--reps K]
                               time losses against the memory bandwidth measured in the same run

global options (anywhere on the line):
  --backend cpu|wgpu|auto      compute backend (default auto)
  --plugin PATH                load a plugin shared object first (repeatable)
  -h, --help                   this text
  -V, --version                the version";

/// Options that apply to every command.
pub struct Global {
    /// The context every command computes with.
    pub ctx: Context,
    /// The backend asked for on the command line.
    pub backend: BackendKind,
}

fn main() {
    // Mesa's Vulkan device-select layer prints "XDG_RUNTIME_DIR is invalid" on every
    // Vulkan instance when that variable is unset; it has nothing to say to a user here.
    if std::env::var_os("NODEVICE_SELECT").is_none()
        && std::env::var_os("XDG_RUNTIME_DIR").is_none()
    {
        // SAFETY: first statement of main, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(args) {
        Ok(()) => {}
        Err(f) => {
            eprintln!("losskit: error: {}", f.msg.replace('\n', " "));
            std::process::exit(f.code);
        }
    }
}

fn real_main(args: Vec<String>) -> CliResult {
    let mut backend = BackendKind::Auto;
    let mut plugins: Vec<String> = Vec::new();
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match flag.as_str() {
            "--backend" => {
                let v = value(&flag, inline, &mut it)?;
                backend = BackendKind::parse(&v).ok_or_else(|| {
                    Fail::usage(format!("--backend '{v}' is not one of cpu, wgpu, auto"))
                })?;
            }
            "--plugin" => plugins.push(value(&flag, inline, &mut it)?),
            "-h" | "--help" if rest.is_empty() => {
                println!("{USAGE}");
                return Ok(());
            }
            "-V" | "--version" if rest.is_empty() => {
                println!("losskit {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            _ => rest.push(a),
        }
    }
    let Some(cmd) = rest.first().cloned() else {
        return Err(Fail::usage(
            "no command given (try `losskit list` or `losskit --help`)",
        ));
    };
    let ctx = Context::new(backend)?;
    load_plugins(&ctx, &plugins)?;
    let g = Global { ctx, backend };
    let args = &rest[1..];
    match cmd.as_str() {
        "list" => commands::list(&g, args),
        "describe" => commands::describe(&g, args),
        "gradcheck" => commands::gradcheck(&g, args),
        "run" => commands::run(&g, args),
        "demo" => demo::main(&g, args),
        "bench" => bench::main(&g, args),
        "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Fail::usage(format!(
            "unknown command '{other}' (commands: list, describe, gradcheck, run, demo, bench)"
        ))),
    }
}

/// The value of an option: inline (`--x=v`) or the next argument.
pub fn value(
    flag: &str,
    inline: Option<String>,
    it: &mut impl Iterator<Item = String>,
) -> CliResult<String> {
    match inline {
        Some(v) => Ok(v),
        None => it
            .next()
            .ok_or_else(|| Fail::usage(format!("{flag} needs a value"))),
    }
}

/// Load the plugins named by `--plugin` into `ctx`, in order.
fn load_plugins(ctx: &Context, paths: &[String]) -> CliResult {
    for p in paths {
        losskit::plugin::load(ctx, p, None)
            .map_err(|e| Fail::from(format!("cannot load plugin '{p}': {}", e.msg)))?;
    }
    Ok(())
}
