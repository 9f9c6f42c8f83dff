//! The loss registry: the builtin losses by id (a plain list plus lookup), and the loss
//! catalogue table. Plugin losses are registered per context (`crate::context`).
//!
//! The C API's introspection, the CLI's `list`/`describe`, the README's loss table, the
//! bindings' generic path and the generic test suites all read the registry.

use std::sync::{Arc, OnceLock};

pub use crate::exec::def::{LossDef, LossImpl, MeanRule, ParamSet, Surrogate, TestValues};
pub use crate::spec::{AuxSpec, Domain, InputSpec, LossSpec};
pub use crate::text::Text;

/// The builtin losses, built once from [`crate::losses::BUILTINS`].
pub fn builtins() -> &'static [Arc<LossDef>] {
    static B: OnceLock<Vec<Arc<LossDef>>> = OnceLock::new();
    B.get_or_init(|| {
        crate::losses::BUILTINS
            .iter()
            .map(|f| Arc::new(f()))
            .collect()
    })
}

/// Find a builtin by id.
pub fn builtin(id: &str) -> Option<Arc<LossDef>> {
    builtins()
        .iter()
        .find(|d| d.spec.id.as_str() == id)
        .cloned()
}

/// The loss catalogue as a Markdown table (id, family, inputs, CPU, GPU, source), as the
/// README shows it between `<!-- losses:start -->` and `<!-- losses:end -->`.
pub fn markdown_table(defs: &[Arc<LossDef>]) -> String {
    let mut s =
        String::from("| id | family | inputs | CPU | GPU | source |\n|---|---|---|---|---|---|\n");
    for d in defs {
        let sp = &d.spec;
        let inputs: Vec<String> = sp
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "{}{} [{}]",
                    i.name,
                    if i.optional { "?" } else { "" },
                    i.shape
                )
            })
            .collect();
        s.push_str(&format!(
            "| `{}` | {} | {} | yes | {} | {} |\n",
            sp.id,
            sp.family,
            inputs.join(", "),
            if d.has_gpu() { "yes" } else { "no" },
            sp.source.replace('|', "/")
        ));
    }
    s
}
