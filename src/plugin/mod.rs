//! The plugin host: users' own losses, loaded at run time from shared objects.
//!
//! A plugin is a shared object (written in C, C++, Rust...) exporting one entry point,
//! `lk_plugin_init` (or `lk_plugin_<stem>_init`), that returns a static descriptor of its
//! losses ([`abi::lk_plugin_v1`]): for each loss the same spec data as a builtin (id,
//! inputs, parameters with defaults and ranges, auxiliary outputs), CPU callbacks and an
//! optional WGSL kernel. [`load`] (C: `lk_plugin_load`) opens it, checks the ABI version
//! and every spec, and registers the losses into one [`Context`]; from then on a plugin loss
//! is used, introspected and tested exactly like a builtin.
//!
//! **Loading a plugin runs its code** (its initialisers and its entry point), with the
//! rights of the calling process. Load only plugins you trust. Loading is always an
//! explicit call: losskit never loads plugins from a directory or an environment variable.
//!
//! What the host guarantees:
//! - A load is all-or-nothing: when anything fails (open, entry symbol, ABI version,
//!   an invalid spec, an id clash, the entry point's own error), nothing is registered, and
//!   the error names the file and the cause, with its own status code.
//! - The library stays loaded while anything from it lives: every registered loss, every
//!   configured loss and every cached plugin state holds the library. v1 never unloads a
//!   plugin before the context and every loss created from it are freed.
//! - The host does the generic work once: argument validation from the spec (including
//!   the range of i64 class targets, so a plugin never sees an out-of-range index),
//!   contiguous copies of strided inputs, the reduction, the upstream gradient and the
//!   caller's output layout. A plugin computes unscaled per-row losses and per-row
//!   gradients only (see [`abi::lk_plugin_call_v1`]).
//! - Errors a callback reports (`host->set_error`) reach the caller with the plugin's
//!   message; a NaN result is not an error and propagates.
//!
//! The contract for plugin authors, with a walk-through, is in `plugins/README.md`.

pub mod abi;
#[cfg(feature = "plugins")]
mod adapter;
#[cfg(feature = "plugins")]
mod host;

use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::error::Result;
use crate::registry::Text;

/// A loaded plugin, as a context lists it.
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// The plugin's name (from its descriptor).
    pub name: Text,
    /// The plugin's version text.
    pub version: Text,
    /// The file it was loaded from, as given to [`load`].
    pub path: Text,
    /// The entry symbol that was called.
    pub entry: Text,
    /// Ids of the losses it registered, in descriptor order.
    pub losses: Vec<Text>,
}

/// Load the plugin at `path` into `ctx` and register its losses.
///
/// `entry` names the entry symbol; `None` tries `lk_plugin_init`, then
/// `lk_plugin_<stem>_init`, where `<stem>` is the lower-case ASCII letters of the file name
/// up to its first `.`, after dropping a leading `lib` (`libasl.so` -> `lk_plugin_asl_init`).
///
/// **This runs the plugin's code.** Errors: `PluginLoad` (cannot open), `PluginSymbol` (no
/// entry symbol), `PluginAbi` (other ABI version or a table too small), `PluginInvalidSpec`,
/// `PluginDuplicateId`, `PluginFailed` (the entry point or the check of the default
/// parameters reported an error), `Unsupported` (built without the `plugins` feature).
pub fn load(ctx: &Context, path: impl AsRef<Path>, entry: Option<&str>) -> Result<PluginInfo> {
    let path: PathBuf = path.as_ref().to_path_buf();
    #[cfg(feature = "plugins")]
    {
        host::load(ctx, &path, entry)
    }
    #[cfg(not(feature = "plugins"))]
    {
        let _ = (ctx, entry);
        crate::bail!(
            Unsupported,
            "{}: this build of losskit has no plugin host (feature 'plugins' is off)",
            path.display()
        )
    }
}

/// The entry symbol tried after `lk_plugin_init` for a file name (SQLite's rule):
/// `lk_plugin_<stem>_init`, `<stem>` being the lower-case ASCII letters of the file name
/// up to its first `.`, after dropping a leading `lib`. None when no letter remains.
pub fn stem_entry(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let file = file.strip_prefix("lib").unwrap_or(file);
    let base = file.split('.').next().unwrap_or("");
    let stem: String = base
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!stem.is_empty()).then(|| format!("lk_plugin_{stem}_init"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_rule() {
        let e = |p: &str| stem_entry(Path::new(p));
        assert_eq!(e("/x/libasl.so").as_deref(), Some("lk_plugin_asl_init"));
        assert_eq!(
            e("libLog_Cosh2.so.1").as_deref(),
            Some("lk_plugin_logcosh_init")
        );
        assert_eq!(e("plugin.dylib").as_deref(), Some("lk_plugin_plugin_init"));
        assert_eq!(e("lib.so"), None);
        assert_eq!(e("/x/123.so"), None);
    }
}
