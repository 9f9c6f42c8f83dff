//! Typed loss parameters: specs (type, default, valid range, doc) and configured values.
//!
//! A value outside its range is an error (`InvalidParam`), never a clamp.

use crate::error::Result;
use crate::text::Text;
use crate::{bail, err};

/// The type and valid range of a parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    /// A float in `[min, max]`; an open end excludes its bound. Infinite bounds are allowed.
    F64 {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// True when `min` itself is excluded.
        min_open: bool,
        /// True when `max` itself is excluded.
        max_open: bool,
    },
    /// An integer in `[min, max]`.
    I64 {
        /// Lower bound (inclusive).
        min: i64,
        /// Upper bound (inclusive).
        max: i64,
    },
    /// A boolean.
    Bool,
    /// One of a fixed list of lower-case names; the value is the index in the list.
    Enum(Vec<Text>),
}

/// A parameter value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue {
    /// A float.
    F64(f64),
    /// An integer.
    I64(i64),
    /// A boolean.
    Bool(bool),
    /// The index of an enum choice.
    Enum(usize),
}

/// One parameter of a loss.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// snake_case name.
    pub name: Text,
    /// Type and valid range.
    pub kind: ParamKind,
    /// Default value (inside the range).
    pub default: ParamValue,
    /// One-line description.
    pub doc: Text,
}

fn fmt_f64(v: f64) -> String {
    if v == f64::INFINITY {
        "inf".into()
    } else if v == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{v}")
    }
}

impl ParamSpec {
    /// A float parameter with a closed range `[min, max]` (use infinities for no bound).
    pub fn f64(name: &str, default: f64, min: f64, max: f64, doc: &str) -> Self {
        ParamSpec {
            name: Text::new(name),
            kind: ParamKind::F64 {
                min,
                max,
                min_open: false,
                max_open: false,
            },
            default: ParamValue::F64(default),
            doc: Text::new(doc),
        }
    }
    /// A float parameter with an open lower bound `(min, max]`.
    pub fn f64_open_min(name: &str, default: f64, min: f64, max: f64, doc: &str) -> Self {
        let mut p = Self::f64(name, default, min, max, doc);
        if let ParamKind::F64 { min_open, .. } = &mut p.kind {
            *min_open = true;
        }
        p
    }
    /// Make the upper bound open.
    pub fn open_max(mut self) -> Self {
        if let ParamKind::F64 { max_open, .. } = &mut self.kind {
            *max_open = true;
        }
        self
    }
    /// An integer parameter in `[min, max]`.
    pub fn i64(name: &str, default: i64, min: i64, max: i64, doc: &str) -> Self {
        ParamSpec {
            name: Text::new(name),
            kind: ParamKind::I64 { min, max },
            default: ParamValue::I64(default),
            doc: Text::new(doc),
        }
    }
    /// The usual `ignore_index` parameter (default -100, any value).
    pub fn ignore_index() -> Self {
        Self::i64(
            "ignore_index",
            -100,
            i64::MIN,
            i64::MAX,
            "rows whose target equals this value contribute nothing and get zero gradient",
        )
    }
    /// A boolean parameter.
    pub fn bool(name: &str, default: bool, doc: &str) -> Self {
        ParamSpec {
            name: Text::new(name),
            kind: ParamKind::Bool,
            default: ParamValue::Bool(default),
            doc: Text::new(doc),
        }
    }
    /// An enum parameter; `default` must be one of `choices`.
    pub fn choice(name: &str, default: &str, choices: &[&str], doc: &str) -> Self {
        let idx = choices
            .iter()
            .position(|c| *c == default)
            .unwrap_or(usize::MAX);
        ParamSpec {
            name: Text::new(name),
            kind: ParamKind::Enum(choices.iter().map(|c| Text::new(c)).collect()),
            default: ParamValue::Enum(idx),
            doc: Text::new(doc),
        }
    }

    /// The type name (`f64`, `i64`, `bool`, `enum`).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ParamKind::F64 { .. } => "f64",
            ParamKind::I64 { .. } => "i64",
            ParamKind::Bool => "bool",
            ParamKind::Enum(_) => "enum",
        }
    }

    /// The valid range as text: `[0, 1]`, `(0, inf)`, `any`, `true|false`, `a|b|c`.
    pub fn range_text(&self) -> String {
        match &self.kind {
            ParamKind::F64 {
                min,
                max,
                min_open,
                max_open,
            } => {
                if *min == f64::NEG_INFINITY && *max == f64::INFINITY {
                    return "any finite".into();
                }
                format!(
                    "{}{}, {}{}",
                    if *min_open || min.is_infinite() {
                        '('
                    } else {
                        '['
                    },
                    fmt_f64(*min),
                    fmt_f64(*max),
                    if *max_open || max.is_infinite() {
                        ')'
                    } else {
                        ']'
                    }
                )
            }
            ParamKind::I64 { min, max } => {
                if *min == i64::MIN && *max == i64::MAX {
                    "any".into()
                } else if *max == i64::MAX {
                    format!("[{min}, inf)")
                } else {
                    format!("[{min}, {max}]")
                }
            }
            ParamKind::Bool => "true|false".into(),
            ParamKind::Enum(c) => c.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("|"),
        }
    }

    /// The value as text (`0.1`, `-100`, `true`, `gce`).
    pub fn value_text(&self, v: &ParamValue) -> String {
        match (v, &self.kind) {
            (ParamValue::F64(x), _) => fmt_f64(*x),
            (ParamValue::I64(x), _) => x.to_string(),
            (ParamValue::Bool(b), _) => b.to_string(),
            (ParamValue::Enum(i), ParamKind::Enum(c)) => c
                .get(*i)
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| format!("#{i}")),
            (ParamValue::Enum(i), _) => format!("#{i}"),
        }
    }

    /// Check that `v` has this parameter's type and lies in its range. `loss` names the loss
    /// in the message.
    pub fn check(&self, loss: &str, v: &ParamValue) -> Result<()> {
        let name = self.name.as_str();
        match (&self.kind, v) {
            (
                ParamKind::F64 {
                    min,
                    max,
                    min_open,
                    max_open,
                },
                ParamValue::F64(x),
            ) => {
                let x = *x;
                let ok = x.is_finite()
                    && (if *min_open { x > *min } else { x >= *min })
                    && (if *max_open { x < *max } else { x <= *max });
                if !ok {
                    bail!(
                        InvalidParam,
                        "{loss}: {name} = {} outside {}",
                        fmt_f64(x),
                        self.range_text()
                    );
                }
            }
            (ParamKind::I64 { min, max }, ParamValue::I64(x)) => {
                if x < min || x > max {
                    bail!(
                        InvalidParam,
                        "{loss}: {name} = {x} outside {}",
                        self.range_text()
                    );
                }
            }
            (ParamKind::Bool, ParamValue::Bool(_)) => {}
            (ParamKind::Enum(c), ParamValue::Enum(i)) => {
                if *i >= c.len() {
                    bail!(
                        InvalidParam,
                        "{loss}: {name} choice #{i} outside {}",
                        self.range_text()
                    );
                }
            }
            _ => bail!(
                InvalidParam,
                "{loss}: {name} is of type {}, not {}",
                self.type_name(),
                match v {
                    ParamValue::F64(_) => "f64",
                    ParamValue::I64(_) => "i64",
                    ParamValue::Bool(_) => "bool",
                    ParamValue::Enum(_) => "enum",
                }
            ),
        }
        Ok(())
    }

    /// Parse a textual value of this parameter's type (used by the CLI and bindings).
    pub fn parse(&self, loss: &str, s: &str) -> Result<ParamValue> {
        let name = self.name.as_str();
        let bad = || {
            err!(
                InvalidParam,
                "{loss}: {name}: cannot read '{s}' as {}",
                self.type_name()
            )
        };
        let v = match &self.kind {
            ParamKind::F64 { .. } => ParamValue::F64(s.trim().parse::<f64>().map_err(|_| bad())?),
            ParamKind::I64 { .. } => ParamValue::I64(s.trim().parse::<i64>().map_err(|_| bad())?),
            ParamKind::Bool => match s.trim() {
                "true" | "1" | "yes" | "on" => ParamValue::Bool(true),
                "false" | "0" | "no" | "off" => ParamValue::Bool(false),
                _ => return Err(bad()),
            },
            ParamKind::Enum(c) => match c.iter().position(|t| t.as_str() == s.trim()) {
                Some(i) => ParamValue::Enum(i),
                None => bail!(
                    InvalidParam,
                    "{loss}: {name} = '{s}' is not one of {}",
                    self.range_text()
                ),
            },
        };
        self.check(loss, &v)?;
        Ok(v)
    }
}

/// The configured parameter values of one loss, in spec order.
#[derive(Clone, Debug)]
pub struct Params {
    specs: Vec<ParamSpec>,
    values: Vec<ParamValue>,
}

impl Params {
    /// Defaults for `specs`.
    pub fn defaults(specs: &[ParamSpec]) -> Self {
        Params {
            specs: specs.to_vec(),
            values: specs.iter().map(|p| p.default).collect(),
        }
    }
    /// Index of a parameter by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|p| p.name.as_str() == name)
    }
    /// The specs.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }
    /// The values, in spec order.
    pub fn values(&self) -> &[ParamValue] {
        &self.values
    }
    /// Set by name, checking type and range. `loss` names the loss in messages.
    pub fn set(&mut self, loss: &str, name: &str, v: ParamValue) -> Result<()> {
        let Some(i) = self.index(name) else {
            let known: Vec<&str> = self.specs.iter().map(|p| p.name.as_str()).collect();
            bail!(
                UnknownParam,
                "{loss}: no parameter '{name}' (parameters: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        };
        self.specs[i].check(loss, &v)?;
        self.values[i] = v;
        Ok(())
    }
    /// Set an enum parameter by its choice name.
    pub fn set_enum(&mut self, loss: &str, name: &str, choice: &str) -> Result<()> {
        let Some(i) = self.index(name) else {
            return self.set(loss, name, ParamValue::Enum(0));
        };
        let v = match &self.specs[i].kind {
            ParamKind::Enum(_) => self.specs[i].parse(loss, choice)?,
            _ => bail!(
                InvalidParam,
                "{loss}: {name} is of type {}, not enum",
                self.specs[i].type_name()
            ),
        };
        self.values[i] = v;
        Ok(())
    }
    /// Raw value by name (None when the loss has no such parameter, e.g. an optional
    /// `ignore_index` that only some losses declare).
    pub fn get(&self, name: &str) -> Option<ParamValue> {
        self.index(name).map(|i| self.values[i])
    }

    /// The value of a parameter the caller knows the loss declares. A name the loss does not
    /// have is a programming error inside the library: it panics with the name and the
    /// loss's parameters, in every build profile (the C boundary turns the panic into
    /// `LK_ERR_PANIC`), and the generic configuration test (`tests/config.rs`) computes
    /// every loss under each of its parameter sets so that a misspelt name fails there.
    #[track_caller]
    fn declared(&self, name: &str, want: &str) -> (usize, ParamValue) {
        match self.index(name) {
            Some(i) => (i, self.values[i]),
            None => {
                let known: Vec<&str> = self.specs.iter().map(|p| p.name.as_str()).collect();
                panic!(
                    "losskit internal error: {want} parameter '{name}' is not declared (parameters: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            }
        }
    }

    #[track_caller]
    fn wrong_type(&self, i: usize, want: &str) -> ! {
        let p = &self.specs[i];
        panic!(
            "losskit internal error: parameter '{}' is {}, read as {want}",
            p.name,
            p.type_name()
        )
    }

    /// A float parameter. Panics when the loss declares no such parameter or it is not a
    /// float (a programming error, see [`Params::get`] for optional ones).
    #[track_caller]
    pub fn f64(&self, name: &str) -> f64 {
        match self.declared(name, "f64") {
            (_, ParamValue::F64(x)) => x,
            (i, _) => self.wrong_type(i, "f64"),
        }
    }
    /// An integer parameter. Panics like [`Params::f64`].
    #[track_caller]
    pub fn i64(&self, name: &str) -> i64 {
        match self.declared(name, "i64") {
            (_, ParamValue::I64(x)) => x,
            (i, _) => self.wrong_type(i, "i64"),
        }
    }
    /// A boolean parameter. Panics like [`Params::f64`].
    #[track_caller]
    pub fn bool(&self, name: &str) -> bool {
        match self.declared(name, "bool") {
            (_, ParamValue::Bool(x)) => x,
            (i, _) => self.wrong_type(i, "bool"),
        }
    }
    /// The index of the chosen choice of an enum parameter (in the spec's choice order).
    /// Panics like [`Params::f64`].
    #[track_caller]
    pub fn choice_index(&self, name: &str) -> usize {
        self.enum_value(name).0
    }
    /// The chosen name of an enum parameter. Panics like [`Params::f64`].
    #[track_caller]
    pub fn choice(&self, name: &str) -> &str {
        self.enum_value(name).1
    }
    #[track_caller]
    fn enum_value(&self, name: &str) -> (usize, &str) {
        let (i, v) = self.declared(name, "enum");
        match (&self.specs[i].kind, v) {
            (ParamKind::Enum(c), ParamValue::Enum(k)) if k < c.len() => (k, c[k].as_str()),
            _ => self.wrong_type(i, "enum"),
        }
    }
}
