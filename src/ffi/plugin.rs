//! Loading plugins into a context, and listing them.
//!
//! Loading a plugin runs its code; it is always an explicit call (no directory or
//! environment-variable auto-load). See `plugins/README.md` for writing one.

use std::ffi::c_char;
use std::sync::Arc;

use super::context::lk_context;
use super::{guard, guard_or, lk_status, ref_arg, str_arg};
use crate::bail;
use crate::error::Result;
use crate::plugin::PluginInfo;

/// One loaded plugin (lk_plugin_describe).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_plugin_info {
    /// The plugin's name (from its descriptor).
    pub name: *const c_char,
    /// The plugin's version text.
    pub version: *const c_char,
    /// The path it was loaded from, as given to lk_plugin_load.
    pub path: *const c_char,
    /// The entry symbol that was called.
    pub entry: *const c_char,
    /// Number of losses it registered (lk_plugin_loss_id_at).
    pub n_losses: usize,
}

/// Load a plugin (a shared object) and register its losses into a context.
///
/// LOADING A PLUGIN RUNS ITS CODE (its initialisers and entry point) with the rights of
/// this process: load only plugins you trust. Nothing is ever loaded implicitly.
///
/// The load is all-or-nothing: on any error nothing is registered, the library is
/// closed again, and lk_last_error_message() names the file and the cause. Once loaded,
/// the plugin's losses are used like builtins (lk_loss_create, lk_loss_info, ...). The
/// library stays loaded while the context or any loss created from the plugin lives.
///
/// @param ctx The context to register into (const: loading is safe while other threads
///        use the context).
/// @param path File path of the plugin (borrowed for the call). A bare file name is taken
///        relative to the current directory; the dynamic loader's search path is not used.
/// @param entry The entry symbol to call, or NULL: then "lk_plugin_init" is tried, then
///        `lk_plugin_<stem>_init`, `<stem>` being the lower-case letters of the file name up
///        to its first '.', after dropping a leading "lib" (libasl.so: lk_plugin_asl_init).
/// @return LK_OK; LK_ERR_NULL_ARG; LK_ERR_PLUGIN_LOAD (cannot open); LK_ERR_PLUGIN_SYMBOL
///         (no entry symbol); LK_ERR_PLUGIN_ABI (other plugin ABI version, both in the
///         message); LK_ERR_PLUGIN_INVALID_SPEC (e.g. a default outside its range);
///         LK_ERR_PLUGIN_DUPLICATE_ID (an id clashes with a builtin or a loaded plugin);
///         LK_ERR_PLUGIN_FAILED (the plugin reported an error; its message is passed on);
///         LK_ERR_UNSUPPORTED (losskit built without the plugin host).
///
/// # Safety
/// `ctx` must be NULL or live; `path` and `entry` NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_plugin_load(
    ctx: *const lk_context,
    path: *const c_char,
    entry: *const c_char,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let ctx = unsafe { ref_arg(ctx, "lk_plugin_load: ctx") }?;
        // SAFETY: caller contract.
        let path = unsafe { str_arg(path, "lk_plugin_load: path") }?;
        let entry = if entry.is_null() {
            None
        } else {
            // SAFETY: caller contract (non-NULL checked).
            Some(unsafe { str_arg(entry, "lk_plugin_load: entry") }?)
        };
        crate::plugin::load(&ctx.inner, path, entry).map(|_| ())
    })
}

/// Number of plugins loaded into a context.
///
/// @param ctx A live context.
/// @return The count, or 0 when ctx is NULL.
///
/// # Safety
/// `ctx` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_plugin_count(ctx: *const lk_context) -> usize {
    guard_or(0, || {
        // SAFETY: caller contract.
        match unsafe { ctx.as_ref() } {
            Some(c) => c.inner.plugins().len(),
            None => 0,
        }
    })
}

/// # Safety
/// `ctx` NULL or live.
unsafe fn plugin_at(ctx: *const lk_context, index: usize) -> Result<Arc<PluginInfo>> {
    // SAFETY: caller contract.
    let c = unsafe { ref_arg(ctx, "ctx") }?;
    let list = c.inner.plugins();
    let n = list.len();
    match list.into_iter().nth(index) {
        Some(p) => Ok(p),
        None => bail!(
            InvalidArg,
            "plugin index {index} is out of range ({n} plugins loaded)"
        ),
    }
}

/// Describe the plugin at `index` (load order, 0 <= index < lk_plugin_count).
///
/// @param ctx A live context.
/// @param index Plugin index.
/// @param out_info Receives the description on LK_OK. Its strings live as long as the
///        context.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_INVALID_ARG (index out of range).
///
/// # Safety
/// `ctx` NULL or live; `out_info` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_plugin_describe(
    ctx: *const lk_context,
    index: usize,
    out_info: *mut lk_plugin_info,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let p = unsafe { plugin_at(ctx, index) }?;
        if out_info.is_null() {
            bail!(NullArg, "lk_plugin_describe: out_info is NULL");
        }
        let info = lk_plugin_info {
            name: p.name.as_c_str().as_ptr(),
            version: p.version.as_c_str().as_ptr(),
            path: p.path.as_c_str().as_ptr(),
            entry: p.entry.as_c_str().as_ptr(),
            n_losses: p.losses.len(),
        };
        // SAFETY: checked non-NULL; the caller provides writable storage. The strings
        // point into the PluginInfo, which the context keeps for its whole life.
        unsafe { out_info.write(info) };
        Ok(())
    })
}

/// The id of loss `k` of the plugin at `index`.
///
/// @param ctx A live context.
/// @param index Plugin index (0 <= index < lk_plugin_count).
/// @param k Loss index (0 <= k < lk_plugin_info.n_losses, see lk_plugin_describe).
/// @return The id (valid as long as the context), or NULL when out of range or ctx is NULL.
///
/// # Safety
/// `ctx` NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_plugin_loss_id_at(
    ctx: *const lk_context,
    index: usize,
    k: usize,
) -> *const c_char {
    guard_or(std::ptr::null(), || {
        // SAFETY: caller contract.
        match unsafe { plugin_at(ctx, index) } {
            Ok(p) => p
                .losses
                .get(k)
                .map_or(std::ptr::null(), |t| t.as_c_str().as_ptr()),
            Err(_) => std::ptr::null(),
        }
    })
}
