//! Introspection of the registry: which losses exist, their inputs, parameters, outputs.
//!
//! Strings returned here live as long as the loss's registry entry: forever for builtins,
//! as long as the context (and any loss created from the plugin) for plugin losses.

use std::ffi::c_char;
use std::sync::Arc;

use super::context::lk_context;
use super::tensor::{LK_DTYPE_CODE_FLOAT, LK_DTYPE_CODE_INT, lk_dtype};
use super::{guard, guard_or, lk_status, ref_arg, str_arg};
use crate::error::Result;
use crate::params::{ParamKind, ParamValue};
use crate::registry::LossDef;
use crate::tensor::DType;
use crate::{bail, err};

/// Type of a loss parameter.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lk_param_type {
    /// double, set with lk_loss_set_f64.
    LK_PARAM_F64 = 0,
    /// int64_t, set with lk_loss_set_i64.
    LK_PARAM_I64 = 1,
    /// bool, set with lk_loss_set_bool.
    LK_PARAM_BOOL = 2,
    /// one of named choices, set with lk_loss_set_enum.
    LK_PARAM_ENUM = 3,
}

/// Summary of one loss (lk_loss_describe).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_loss_info {
    /// Stable id, e.g. "cross_entropy".
    pub id: *const c_char,
    /// Family, e.g. "classification".
    pub family: *const c_char,
    /// One-line summary.
    pub summary: *const c_char,
    /// Source paper(s).
    pub source: *const c_char,
    /// Shape letter of the per-sample dimension ("N", "B"...).
    pub rows: *const c_char,
    /// true when the loss is one scalar over the batch (reduction none is refused).
    pub batch_level: bool,
    /// true when the first input's gradient may be written over it.
    pub in_place: bool,
    /// Number of inputs (lk_loss_describe_input).
    pub n_inputs: usize,
    /// Number of parameters (lk_loss_describe_param).
    pub n_params: usize,
    /// Number of auxiliary outputs (lk_loss_describe_aux).
    pub n_aux: usize,
}

/// One input of a loss (lk_loss_describe_input).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_input_info {
    /// Name, e.g. "logits".
    pub name: *const c_char,
    /// Shape letters joined by commas, e.g. "N,C" ("" for a scalar).
    pub shape: *const c_char,
    /// One-line description.
    pub doc: *const c_char,
    /// Element type.
    pub dtype: lk_dtype,
    /// true when a gradient is returned for this input.
    pub differentiable: bool,
    /// true when the input may be absent (data NULL).
    pub optional: bool,
}

/// One parameter of a loss (lk_loss_describe_param). Only the fields of its type are meaningful.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_param_info {
    /// Name, e.g. "label_smoothing".
    pub name: *const c_char,
    /// One-line description.
    pub doc: *const c_char,
    /// Type (lk_param_type).
    pub type_: i32,
    /// Default of an f64 parameter.
    pub default_f64: f64,
    /// Lower bound of an f64 parameter (may be -inf).
    pub min_f64: f64,
    /// Upper bound of an f64 parameter (may be +inf).
    pub max_f64: f64,
    /// true when min_f64 itself is excluded.
    pub min_open: bool,
    /// true when max_f64 itself is excluded.
    pub max_open: bool,
    /// Default of an i64 parameter.
    pub default_i64: i64,
    /// Inclusive lower bound of an i64 parameter.
    pub min_i64: i64,
    /// Inclusive upper bound of an i64 parameter.
    pub max_i64: i64,
    /// Default of a bool parameter.
    pub default_bool: bool,
    /// Default choice of an enum parameter.
    pub default_enum: *const c_char,
    /// Number of choices of an enum parameter (lk_loss_param_choice).
    pub n_choices: usize,
}

/// One auxiliary output of a loss (lk_loss_describe_aux).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lk_aux_info {
    /// Name, e.g. "lse".
    pub name: *const c_char,
    /// Shape letters, e.g. "N".
    pub shape: *const c_char,
    /// One-line description.
    pub doc: *const c_char,
}

/// # Safety
/// `ctx` NULL or live; `id` NULL or a C string.
unsafe fn find(ctx: *const lk_context, id: *const c_char) -> Result<Arc<LossDef>> {
    // SAFETY: caller contract.
    let ctx = unsafe { ref_arg(ctx, "ctx") }?;
    // SAFETY: caller contract.
    let id = unsafe { str_arg(id, "id") }?;
    ctx.inner.find(id)
}

fn out<T>(p: *mut T, v: T) -> Result<()> {
    if p.is_null() {
        bail!(NullArg, "out_info is NULL");
    }
    // SAFETY: non-NULL; the caller provides writable storage.
    unsafe { p.write(v) };
    Ok(())
}

fn dtype_of(d: DType) -> lk_dtype {
    match d {
        DType::F32 => lk_dtype {
            code: LK_DTYPE_CODE_FLOAT,
            bits: 32,
            lanes: 1,
        },
        DType::I64 => lk_dtype {
            code: LK_DTYPE_CODE_INT,
            bits: 64,
            lanes: 1,
        },
    }
}

/// Number of losses a context knows (builtins, then plugins in load order).
///
/// @param ctx A live context.
/// @return The count, or 0 when ctx is NULL.
///
/// # Safety
/// `ctx` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_count(ctx: *const lk_context) -> usize {
    guard_or(0, || {
        // SAFETY: caller contract.
        unsafe { ctx.as_ref() }.map_or(0, |c| c.inner.losses().len())
    })
}

/// The id of the loss at `index` (0 <= index < lk_loss_count).
///
/// @param ctx A live context.
/// @param index Position in the catalogue.
/// @return The id (a builtin's lives forever, a plugin loss's as long as the context), or
///         NULL when ctx is NULL or index is out of range.
///
/// # Safety
/// `ctx` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_id_at(ctx: *const lk_context, index: usize) -> *const c_char {
    guard_or(std::ptr::null(), || {
        // SAFETY: caller contract.
        let Some(c) = (unsafe { ctx.as_ref() }) else {
            return std::ptr::null();
        };
        match c.inner.losses().get(index) {
            // The Arc in the registry keeps the text alive after this temporary is dropped.
            Some(d) => d.spec.id.as_c_str().as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// Describe a loss.
///
/// @param ctx A live context.
/// @param id The loss id.
/// @param out_info Receives the description on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS.
///
/// # Safety
/// `ctx` NULL or live; `id` NULL or a C string; `out_info` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_describe(
    ctx: *const lk_context,
    id: *const c_char,
    out_info: *mut lk_loss_info,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let d = unsafe { find(ctx, id) }?;
        let s = &d.spec;
        out(
            out_info,
            lk_loss_info {
                id: s.id.as_c_str().as_ptr(),
                family: s.family.as_c_str().as_ptr(),
                summary: s.summary.as_c_str().as_ptr(),
                source: s.source.as_c_str().as_ptr(),
                rows: s.rows.as_c_str().as_ptr(),
                batch_level: s.batch_level,
                in_place: s.in_place,
                n_inputs: s.inputs.len(),
                n_params: s.params.len(),
                n_aux: s.aux.len(),
            },
        )
    })
}

/// Describe input `index` of a loss.
///
/// @param ctx A live context.
/// @param id The loss id.
/// @param index 0 <= index < n_inputs.
/// @param out_info Receives the description on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS, LK_ERR_INVALID_ARG (index).
///
/// # Safety
/// As lk_loss_describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_describe_input(
    ctx: *const lk_context,
    id: *const c_char,
    index: usize,
    out_info: *mut lk_input_info,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let d = unsafe { find(ctx, id) }?;
        let i = d.spec.inputs.get(index).ok_or_else(|| {
            err!(
                InvalidArg,
                "{}: input index {index} >= {}",
                d.spec.id,
                d.spec.inputs.len()
            )
        })?;
        out(
            out_info,
            lk_input_info {
                name: i.name.as_c_str().as_ptr(),
                shape: i.shape.as_c_str().as_ptr(),
                doc: i.doc.as_c_str().as_ptr(),
                dtype: dtype_of(i.dtype),
                differentiable: i.differentiable,
                optional: i.optional,
            },
        )
    })
}

/// Describe parameter `index` of a loss: type, default and valid range.
///
/// @param ctx A live context.
/// @param id The loss id.
/// @param index 0 <= index < n_params.
/// @param out_info Receives the description on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS, LK_ERR_INVALID_ARG (index).
///
/// # Safety
/// As lk_loss_describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_describe_param(
    ctx: *const lk_context,
    id: *const c_char,
    index: usize,
    out_info: *mut lk_param_info,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let d = unsafe { find(ctx, id) }?;
        let p = d.spec.params.get(index).ok_or_else(|| {
            err!(
                InvalidArg,
                "{}: parameter index {index} >= {}",
                d.spec.id,
                d.spec.params.len()
            )
        })?;
        let mut info = lk_param_info {
            name: p.name.as_c_str().as_ptr(),
            doc: p.doc.as_c_str().as_ptr(),
            type_: 0,
            default_f64: 0.0,
            min_f64: 0.0,
            max_f64: 0.0,
            min_open: false,
            max_open: false,
            default_i64: 0,
            min_i64: 0,
            max_i64: 0,
            default_bool: false,
            default_enum: std::ptr::null(),
            n_choices: 0,
        };
        match (&p.kind, p.default) {
            (
                ParamKind::F64 {
                    min,
                    max,
                    min_open,
                    max_open,
                },
                ParamValue::F64(v),
            ) => {
                info.type_ = lk_param_type::LK_PARAM_F64 as i32;
                info.default_f64 = v;
                info.min_f64 = *min;
                info.max_f64 = *max;
                info.min_open = *min_open;
                info.max_open = *max_open;
            }
            (ParamKind::I64 { min, max }, ParamValue::I64(v)) => {
                info.type_ = lk_param_type::LK_PARAM_I64 as i32;
                info.default_i64 = v;
                info.min_i64 = *min;
                info.max_i64 = *max;
            }
            (ParamKind::Bool, ParamValue::Bool(v)) => {
                info.type_ = lk_param_type::LK_PARAM_BOOL as i32;
                info.default_bool = v;
            }
            (ParamKind::Enum(c), ParamValue::Enum(k)) => {
                info.type_ = lk_param_type::LK_PARAM_ENUM as i32;
                info.n_choices = c.len();
                info.default_enum = c.get(k).map_or(std::ptr::null(), |t| t.as_c_str().as_ptr());
            }
            _ => bail!(
                Internal,
                "{}: parameter '{}' default has the wrong type",
                d.spec.id,
                p.name
            ),
        }
        out(out_info, info)
    })
}

/// Choice `choice` of enum parameter `param_index` of a loss.
///
/// @param ctx A live context.
/// @param id The loss id.
/// @param param_index Index of an enum parameter.
/// @param choice 0 <= choice < n_choices.
/// @return The choice name, or NULL on any error (see lk_last_error_message).
///
/// # Safety
/// `ctx` NULL or live; `id` NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_param_choice(
    ctx: *const lk_context,
    id: *const c_char,
    param_index: usize,
    choice: usize,
) -> *const c_char {
    let mut ptr = std::ptr::null();
    let _ = guard(|| {
        // SAFETY: caller contract.
        let d = unsafe { find(ctx, id) }?;
        let p = d.spec.params.get(param_index).ok_or_else(|| {
            err!(
                InvalidArg,
                "{}: parameter index {param_index} out of range",
                d.spec.id
            )
        })?;
        match &p.kind {
            ParamKind::Enum(c) => match c.get(choice) {
                Some(t) => {
                    ptr = t.as_c_str().as_ptr();
                    Ok(())
                }
                None => bail!(
                    InvalidArg,
                    "{}: {} has {} choices",
                    d.spec.id,
                    p.name,
                    c.len()
                ),
            },
            _ => bail!(
                InvalidArg,
                "{}: {} is not an enum parameter",
                d.spec.id,
                p.name
            ),
        }
    });
    ptr
}

/// Describe auxiliary output `index` of a loss.
///
/// @param ctx A live context.
/// @param id The loss id.
/// @param index 0 <= index < n_aux.
/// @param out_info Receives the description on LK_OK.
/// @return LK_OK, LK_ERR_NULL_ARG, LK_ERR_UNKNOWN_LOSS, LK_ERR_INVALID_ARG (index).
///
/// # Safety
/// As lk_loss_describe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lk_loss_describe_aux(
    ctx: *const lk_context,
    id: *const c_char,
    index: usize,
    out_info: *mut lk_aux_info,
) -> lk_status {
    guard(|| {
        // SAFETY: caller contract.
        let d = unsafe { find(ctx, id) }?;
        let a = d.spec.aux.get(index).ok_or_else(|| {
            err!(
                InvalidArg,
                "{}: aux index {index} >= {}",
                d.spec.id,
                d.spec.aux.len()
            )
        })?;
        out(
            out_info,
            lk_aux_info {
                name: a.name.as_c_str().as_ptr(),
                shape: a.shape.as_c_str().as_ptr(),
                doc: a.doc.as_c_str().as_ptr(),
            },
        )
    })
}
