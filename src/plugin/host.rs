//! Opening a plugin, calling its entry point, checking its descriptor and registering its
//! losses (all or nothing). The host API table handed to plugins lives here too.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::Library;

use super::abi::{
    LK_LOG_DEBUG, LK_LOG_ERROR, LK_LOG_INFO, LK_LOG_WARN, LK_PLUGIN_ABI_VERSION, lk_error_sink,
    lk_host_api_v1, lk_plugin_init_fn, lk_plugin_loss_v1, lk_plugin_v1, min_size,
};
use super::adapter::{self, PluginLoss};
use super::{PluginInfo, stem_entry};
use crate::context::Context;
use crate::error::{ErrorKind, LkError, Result};
use crate::registry::{LossDef, Text};
use crate::version::LK_VERSION_NUMBER;

/// Longest message kept from a plugin (bytes).
const MAX_MSG: usize = 4096;
/// Sanity limits on the counts a descriptor may declare.
pub(crate) const MAX_LOSSES: usize = 4096;

/// The table every plugin receives; static, so plugins may keep the pointer.
pub(crate) static HOST_API: lk_host_api_v1 = lk_host_api_v1 {
    abi_version: LK_PLUGIN_ABI_VERSION,
    struct_size: std::mem::size_of::<lk_host_api_v1>() as u32,
    losskit_version: LK_VERSION_NUMBER,
    set_error: Some(host_set_error),
    log: Some(host_log),
};

/// Text of a plugin-provided C string (lossy UTF-8, at most [`MAX_MSG`] bytes).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
unsafe fn plugin_text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
    let mut s = s.into_owned();
    if s.len() > MAX_MSG {
        let mut cut = MAX_MSG;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    Some(s)
}

unsafe extern "C" fn host_set_error(sink: *mut lk_error_sink, msg: *const c_char) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the plugin passes the sink it received (live during its callback).
        let Some(sink) = (unsafe { sink.as_ref() }) else {
            return;
        };
        // SAFETY: the plugin passes a NUL-terminated string (or NULL).
        if let Some(m) = unsafe { plugin_text(msg) } {
            sink.set(m);
        }
    }));
}

unsafe extern "C" fn host_log(level: i32, msg: *const c_char) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the plugin passes a NUL-terminated string (or NULL).
        let Some(m) = (unsafe { plugin_text(msg) }) else {
            return;
        };
        match level {
            LK_LOG_ERROR => tracing::error!(target: "losskit::plugin", "{m}"),
            LK_LOG_WARN => tracing::warn!(target: "losskit::plugin", "{m}"),
            LK_LOG_INFO => tracing::info!(target: "losskit::plugin", "{m}"),
            LK_LOG_DEBUG => tracing::debug!(target: "losskit::plugin", "{m}"),
            _ => tracing::trace!(target: "losskit::plugin", "{m}"),
        }
    }));
}

impl lk_error_sink {
    pub(crate) fn set(&self, m: String) {
        let mut g = match self.msg.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(m);
    }
    /// The recorded message, or a note that the plugin gave none.
    pub(crate) fn take(&self) -> String {
        let mut g = match self.msg.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.take()
            .unwrap_or_else(|| "(the plugin gave no message)".to_string())
    }
}

/// The dlerror text of a libloading error (its `Display` is only "dlopen failed").
fn loader_text(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => s.to_string(),
        None => format!("{e:?}"),
    }
}

#[cfg(unix)]
fn open(path: &Path) -> std::result::Result<Library, libloading::Error> {
    use libloading::os::unix::{Library as UnixLibrary, RTLD_LOCAL, RTLD_NOW};
    // RTLD_NOW: unresolved symbols fail here, not at the first call. RTLD_LOCAL: the
    // plugin's symbols do not leak into other plugins (it reaches the host via HOST_API).
    // SAFETY: loading runs the library's initialisers; the caller asked for exactly that
    // (documented on lk_plugin_load).
    unsafe { UnixLibrary::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Library::from)
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::result::Result<Library, libloading::Error> {
    // SAFETY: as above.
    unsafe { Library::new(path) }
}

/// A file path as given, but never searched by the dynamic loader: a bare file name is
/// taken relative to the current directory.
fn explicit(path: &Path) -> PathBuf {
    if path.components().count() == 1 && !path.is_absolute() {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

pub(crate) fn load(ctx: &Context, path: &Path, entry: Option<&str>) -> Result<PluginInfo> {
    let shown = path.display().to_string();
    let fail = |kind: ErrorKind, msg: String| LkError::new(kind, format!("{shown}: {msg}"));
    if path.as_os_str().is_empty() {
        return Err(fail(ErrorKind::PluginLoad, "empty plugin path".into()));
    }
    let lib = open(&explicit(path)).map_err(|e| {
        fail(
            ErrorKind::PluginLoad,
            format!("cannot open plugin: {}", loader_text(&e)),
        )
    })?;
    let lib = Arc::new(lib);

    let names: Vec<String> = match entry {
        Some(e) => vec![e.to_string()],
        None => std::iter::once("lk_plugin_init".to_string())
            .chain(stem_entry(path))
            .collect(),
    };
    let mut found: Option<(String, lk_plugin_init_fn)> = None;
    let mut last_err = String::new();
    for n in &names {
        // SAFETY: the symbol is declared with the documented entry signature; a plugin
        // exporting that name with another signature breaks the plugin contract.
        match unsafe { lib.get::<lk_plugin_init_fn>(n.as_str()) } {
            Ok(sym) => {
                found = Some((n.clone(), *sym));
                break;
            }
            Err(e) => last_err = loader_text(&e),
        }
    }
    let Some((entry_name, init)) = found else {
        return Err(fail(
            ErrorKind::PluginSymbol,
            format!(
                "no plugin entry point: tried {} ({last_err})",
                names.join(", ")
            ),
        ));
    };

    let sink = lk_error_sink::new();
    let mut desc: *const lk_plugin_v1 = std::ptr::null();
    // SAFETY: calling the plugin's entry point with the documented arguments; the sink and
    // the out-pointer live for the call; HOST_API is static.
    let rc = unsafe { init(&HOST_API, &sink as *const _ as *mut _, &mut desc) };
    if rc != 0 {
        return Err(fail(
            ErrorKind::PluginFailed,
            format!("{entry_name} failed (status {rc}): {}", sink.take()),
        ));
    }
    // SAFETY: the plugin returns NULL or a pointer to its static descriptor; the first two
    // fields (abi_version, struct_size) are the same in every ABI version.
    let Some(head) = (unsafe { (desc as *const [u32; 2]).as_ref() }) else {
        return Err(fail(
            ErrorKind::PluginFailed,
            format!("{entry_name} returned 0 but no descriptor"),
        ));
    };
    let (abi, size) = (head[0], head[1] as usize);
    if abi != LK_PLUGIN_ABI_VERSION {
        return Err(fail(
            ErrorKind::PluginAbi,
            format!(
                "plugin ABI version mismatch: the plugin was built for plugin ABI v{abi}, this losskit ({}) supports v{LK_PLUGIN_ABI_VERSION}",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    if size < min_size::PLUGIN {
        return Err(fail(
            ErrorKind::PluginAbi,
            format!(
                "lk_plugin_v1.struct_size is {size}, smaller than plugin ABI v{LK_PLUGIN_ABI_VERSION}'s {}",
                min_size::PLUGIN
            ),
        ));
    }
    // SAFETY: checked non-NULL, ABI v1 and large enough for every v1 field.
    let d = unsafe { &*desc };
    let spec_err = |msg: String| fail(ErrorKind::PluginInvalidSpec, msg);
    // SAFETY: descriptor strings are NUL-terminated or NULL (plugin contract).
    let name = unsafe { adapter::c_text(d.name) }
        .ok_or_else(|| spec_err("the plugin descriptor has no name".into()))?;
    // SAFETY: as above.
    let version = unsafe { adapter::c_text(d.version) }.unwrap_or_default();
    if d.n_losses == 0 || d.losses.is_null() {
        return Err(spec_err(format!("plugin '{name}' declares no losses")));
    }
    if d.n_losses > MAX_LOSSES {
        return Err(spec_err(format!(
            "plugin '{name}' declares {} losses (at most {MAX_LOSSES})",
            d.n_losses
        )));
    }
    // SAFETY: `losses` points to n_losses pointers (plugin contract).
    let tables: &[*const lk_plugin_loss_v1] =
        unsafe { std::slice::from_raw_parts(d.losses, d.n_losses) };
    let mut defs: Vec<LossDef> = Vec::with_capacity(tables.len());
    for (k, &t) in tables.iter().enumerate() {
        if t.is_null() {
            return Err(spec_err(format!("plugin '{name}': losses[{k}] is NULL")));
        }
        // SAFETY: a non-NULL entry points to a loss table starting with struct_size.
        let size = unsafe { (t as *const u32).read() } as usize;
        if size < min_size::LOSS {
            return Err(fail(
                ErrorKind::PluginAbi,
                format!(
                    "plugin '{name}': losses[{k}].struct_size is {size}, smaller than plugin ABI v{LK_PLUGIN_ABI_VERSION}'s {}",
                    min_size::LOSS
                ),
            ));
        }
        // Copy the part the plugin has into a zeroed table of the host's size: fields the
        // plugin's (older) table lacks read as NULL / 0, and no read goes past its end.
        // SAFETY: every field of lk_plugin_loss_v1 is valid when zeroed (NULL pointers,
        // None function pointers, 0, false).
        let mut local: lk_plugin_loss_v1 = unsafe { std::mem::zeroed() };
        // SAFETY: the plugin's table has `size` bytes; we copy at most that many into a
        // local of at least as many bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                t as *const u8,
                &mut local as *mut lk_plugin_loss_v1 as *mut u8,
                size.min(std::mem::size_of::<lk_plugin_loss_v1>()),
            )
        };
        let t = &local;
        // SAFETY: the table is at least `min_size::LOSS` bytes (checked) and its pointers
        // follow the plugin contract.
        let def = unsafe { PluginLoss::from_table(t, &name, &shown, lib.clone()) }
            .map_err(|e| fail(e.kind, format!("plugin '{name}': losses[{k}]: {}", e.msg)))?;
        defs.push(def);
    }
    let info = PluginInfo {
        name: Text::new(&name),
        version: Text::new(&version),
        path: Text::new(&shown),
        entry: Text::new(&entry_name),
        losses: defs.iter().map(|d| d.spec.id.clone()).collect(),
    };
    let info = ctx
        .register_plugin(info, defs)
        .map_err(|e| fail(e.kind, format!("plugin '{name}': {}", e.msg)))?;
    tracing::info!(
        target: "losskit::plugin",
        "loaded plugin '{}' {} from {shown} ({} losses)",
        info.name,
        info.version,
        info.losses.len()
    );
    Ok((*info).clone())
}
