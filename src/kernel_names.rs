//! Names, not positions, in GPU kernels: the WGSL constants through which a per-sample
//! kernel refers to its loss's parameters, enum choices, inputs and shape letters, generated
//! from the loss's [`LossSpec`], and those of the host constants a builtin passes after its
//! parameters.
//!
//! The per-sample template puts [`spec_constants`] in front of every per-sample kernel
//! (builtins and plugins), so reordering a spec moves the constants with it and a kernel
//! that names something the spec lacks does not compile. For a spec with the parameters
//! `beta` and `loss_type` (choices `sigmoid`, `hinge`), the inputs `chosen [B]` and
//! `rejected [B]` (optional), the block is
//!
//! ```text
//! const LK_P_BETA: u32 = 0u;
//! const LK_P_LOSS_TYPE: u32 = 1u;
//! const LK_E_LOSS_TYPE_SIGMOID: u32 = 0u;
//! const LK_E_LOSS_TYPE_HINGE: u32 = 1u;
//! const LK_IN_CHOSEN: u32 = 0u;
//! const LK_IN_REJECTED: u32 = 1u;
//! const LK_DIM_B: u32 = 0u;
//! ```
//!
//! - `LK_P_<PARAM>`: the parameter's slot in `lk.params`, read with `lk_param(LK_P_BETA)`
//!   (a bool reads 0 or 1, an enum its choice index);
//! - `LK_E_<PARAM>_<CHOICE>`: the index of an enum choice, compared with
//!   `u32(lk_param(LK_P_LOSS_TYPE))` (a `u32`, so it can also label a `switch` case);
//! - `LK_IN_<INPUT>`: the input's position, its bit in `lk.present` (`lk_present(LK_IN_X)`);
//! - `LK_DIM_<LETTER>`: the shape letter's slot in `lk.dims` (`lk_dim(LK_DIM_B)`);
//! - `LK_C_<NAME>` ([`host_constants`]): the slot in `lk.params` of a host constant, a value
//!   the host computes per call and passes after the parameters.

use std::fmt::Write;

use crate::bail;
use crate::error::Result;
use crate::params::ParamKind;
use crate::spec::LossSpec;

/// The slots of `lk.params` the per-sample contract passes (parameters and host constants).
pub const PARAM_SLOTS: usize = 16;

/// The WGSL identifier part of a snake_case name or a shape letter: upper case, with
/// anything but ASCII letters and digits as `_`.
pub fn upper(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The constant naming parameter `name` (`LK_P_<NAME>`).
pub fn param(name: &str) -> String {
    format!("LK_P_{}", upper(name))
}

/// The constant naming choice `choice` of enum parameter `name` (`LK_E_<NAME>_<CHOICE>`).
pub fn choice(name: &str, choice: &str) -> String {
    format!("LK_E_{}_{}", upper(name), upper(choice))
}

/// The constant naming input `name` (`LK_IN_<NAME>`).
pub fn input(name: &str) -> String {
    format!("LK_IN_{}", upper(name))
}

/// The constant naming shape letter `letter` (`LK_DIM_<LETTER>`).
pub fn dim(letter: &str) -> String {
    format!("LK_DIM_{}", upper(letter))
}

/// The constant naming host constant `name` (`LK_C_<NAME>`).
pub fn host(name: &str) -> String {
    format!("LK_C_{}", upper(name))
}

/// The shape letters of `spec` in the order of `lk.dims`: first appearance over the inputs
/// (fixed sizes are not letters).
pub fn letters(spec: &LossSpec) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    for i in &spec.inputs {
        for d in i.dims() {
            if d.parse::<usize>().is_err() && !v.contains(&d) {
                v.push(d);
            }
        }
    }
    v
}

/// Collects `const NAME: u32 = Vu;` lines, refusing a name given twice.
struct Block {
    id: String,
    text: String,
    names: Vec<String>,
}

impl Block {
    fn new(id: &str, what: &str) -> Self {
        Block {
            id: id.to_string(),
            text: format!("// {id}: {what} (generated from its spec).\n"),
            names: Vec::new(),
        }
    }

    fn push(&mut self, name: String, value: usize) -> Result<()> {
        if self.names.contains(&name) {
            bail!(
                InvalidArg,
                "{}: two of its names give the kernel constant {name}",
                self.id
            );
        }
        let _ = writeln!(self.text, "const {name}: u32 = {value}u;");
        self.names.push(name);
        Ok(())
    }
}

/// The WGSL constants naming the parameters, enum choices, inputs and shape letters of
/// `spec` (see the module docs); an error when two names give the same constant.
pub fn spec_constants(spec: &LossSpec) -> Result<String> {
    let mut b = Block::new(
        spec.id.as_str(),
        "names of the parameters, enum choices, inputs and shape letters",
    );
    for (k, p) in spec.params.iter().enumerate() {
        b.push(param(&p.name), k)?;
        if let ParamKind::Enum(choices) = &p.kind {
            for (j, c) in choices.iter().enumerate() {
                b.push(choice(&p.name, c), j)?;
            }
        }
    }
    for (k, i) in spec.inputs.iter().enumerate() {
        b.push(input(&i.name), k)?;
    }
    for (k, l) in letters(spec).into_iter().enumerate() {
        b.push(dim(l), k)?;
    }
    Ok(b.text)
}

/// The WGSL constants naming the host constants `names` of a kernel for `spec`: constant
/// `j` is slot `spec.params.len() + j` of `lk.params` (nothing without names). An error when
/// a name repeats or the slots run out.
pub fn host_constants(spec: &LossSpec, names: &[&str]) -> Result<String> {
    let id = spec.id.as_str();
    if spec.params.len() + names.len() > PARAM_SLOTS {
        bail!(
            Internal,
            "{id}: {} parameters and {} host constants exceed the contract's {PARAM_SLOTS} slots",
            spec.params.len(),
            names.len()
        );
    }
    if names.is_empty() {
        return Ok(String::new());
    }
    let mut b = Block::new(id, "slots of the host constants");
    for (j, n) in names.iter().enumerate() {
        b.push(host(n), spec.params.len() + j)?;
    }
    Ok(b.text)
}

/// The values of the host constants `names` (in that order) from `given` (name, value)
/// pairs in any order: an error for a name missing from `given` or one `names` lacks.
pub fn host_values(id: &str, names: &[&str], given: &[(&str, f32)]) -> Result<Vec<f32>> {
    for (g, _) in given {
        if !names.contains(g) {
            bail!(
                Internal,
                "{id}: the kernel declares no host constant '{g}' (it has {names:?})"
            );
        }
    }
    names
        .iter()
        .map(|n| match given.iter().find(|(g, _)| g == n) {
            Some(&(_, v)) => Ok(v),
            None => Err(crate::err!(
                Internal,
                "{id}: host constant '{n}' of the kernel was not given"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamSpec;
    use crate::spec::InputSpec;

    fn spec() -> LossSpec {
        LossSpec::new("toy", "test", "x", "test")
            .input(InputSpec::f32("chosen", "B").grad())
            .input(InputSpec::f32("rejected", "B,T").optional())
            .input(InputSpec::f32("pair", "2,B,T"))
            .param(ParamSpec::f64("beta", 0.1, 0.0, 1.0, "b"))
            .param(ParamSpec::choice(
                "loss_type",
                "sigmoid",
                &["sigmoid", "hinge"],
                "t",
            ))
    }

    #[test]
    fn spec_constants_follow_the_spec() {
        let s = spec_constants(&spec()).unwrap();
        for line in [
            "const LK_P_BETA: u32 = 0u;",
            "const LK_P_LOSS_TYPE: u32 = 1u;",
            "const LK_E_LOSS_TYPE_SIGMOID: u32 = 0u;",
            "const LK_E_LOSS_TYPE_HINGE: u32 = 1u;",
            "const LK_IN_CHOSEN: u32 = 0u;",
            "const LK_IN_REJECTED: u32 = 1u;",
            "const LK_IN_PAIR: u32 = 2u;",
            "const LK_DIM_B: u32 = 0u;",
            "const LK_DIM_T: u32 = 1u;",
        ] {
            assert!(s.lines().any(|l| l == line), "{line} missing from\n{s}");
        }
        assert!(!s.contains("LK_DIM_2"), "{s}");
    }

    #[test]
    fn host_constants_follow_the_parameters() {
        let s = host_constants(&spec(), &["den", "omega_lo"]).unwrap();
        assert!(s.contains("const LK_C_DEN: u32 = 2u;"), "{s}");
        assert!(s.contains("const LK_C_OMEGA_LO: u32 = 3u;"), "{s}");
        assert!(host_constants(&spec(), &["a", "a"]).is_err());
        assert_eq!(host_constants(&spec(), &[]).unwrap(), "");
        let many: Vec<String> = (0..15).map(|k| format!("c{k}")).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(host_constants(&spec(), &many).is_err());
    }

    #[test]
    fn host_values_are_matched_by_name() {
        let names = ["den", "lo", "hi"];
        let v = host_values("t", &names, &[("hi", 3.0), ("den", 1.0), ("lo", 2.0)]).unwrap();
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
        assert!(host_values("t", &names, &[("den", 1.0), ("lo", 2.0)]).is_err());
        let e = host_values(
            "t",
            &names,
            &[("den", 1.0), ("lo", 2.0), ("hi", 3.0), ("x", 0.0)],
        )
        .unwrap_err();
        assert!(e.msg.contains("'x'"), "{}", e.msg);
    }

    #[test]
    fn a_name_given_twice_is_refused() {
        // Parameter `a_b` with choice `c` and parameter `a` with choice `b_c`.
        let s = LossSpec::new("clash", "test", "x", "test")
            .input(InputSpec::f32("x", "N"))
            .param(ParamSpec::choice("a_b", "c", &["c", "d"], "t"))
            .param(ParamSpec::choice("a", "e", &["b_c", "e"], "t"));
        let e = spec_constants(&s).unwrap_err();
        assert!(e.msg.contains("LK_E_A_B_C"), "{}", e.msg);
    }
}
