"""
    LibLossKit

Low-level `ccall` wrappers for the whole losskit C API (`include/losskit.h`), one Julia
function per C function with the same name, argument order and types, plus the C structs
(same field order and types, so the layouts match) and constants.

Written by hand from the header (no Julia runtime was available to run Clang.jl where it
was written); `bindings/julia/check/check_ccalls.mjs` verifies every `ccall` symbol,
argument type and return type, every struct and every constant against the header.

The library is `ENV["LOSSKIT_LIBRARY"]` when set, else the newest `liblosskit.so` of the
repository's `target/release` or `target/debug`, else `liblosskit` from the system search
path.

These wrappers do not read the error message: call `lk_last_error_message()` right after a
failing call, with no yield point between (see `LossKit.check`).
"""
module LibLossKit

using Libdl

function _find_library()
    env = get(ENV, "LOSSKIT_LIBRARY", "")
    isempty(env) || return env
    root = normpath(joinpath(@__DIR__, "..", "..", "..", ".."))
    candidates = String[]
    for profile in ("release", "debug")
        path = joinpath(root, "target", profile, "liblosskit." * Libdl.dlext)
        isfile(path) && push!(candidates, path)
    end
    isempty(candidates) && return "liblosskit"
    return candidates[argmax(map(mtime, candidates))]
end

"Path (or name) of the losskit shared library used by every `ccall`."
const liblosskit = _find_library()

# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------

const LK_DEVICE_CPU = Int32(1)
const LK_DEVICE_CUDA_HOST = Int32(3)
const LK_DEVICE_LKBUFFER = Int32(12)
# Plugin ABI constants, from include/losskit_plugin.h (for plugin authors; the plugin tables
# themselves are not mirrored).
const LK_PLUGIN_ABI_VERSION = 1
const LK_LOG_ERROR = Int32(0)
const LK_LOG_WARN = Int32(1)
const LK_LOG_INFO = Int32(2)
const LK_LOG_DEBUG = Int32(3)
const LK_DOMAIN_REAL = Int32(0)
const LK_DOMAIN_POSITIVE = Int32(1)
const LK_DOMAIN_NON_NEGATIVE = Int32(2)
const LK_DOMAIN_UNIT = Int32(3)
const LK_DOMAIN_LOG_PROB = Int32(4)
const LK_DOMAIN_BINARY = Int32(5)
const LK_DOMAIN_CLASS = Int32(6)
const LK_DTYPE_CODE_INT = UInt8(0)
const LK_DTYPE_CODE_FLOAT = UInt8(2)
const LK_MAX_NDIM = 8
const LK_VERSION_MAJOR = 0
const LK_VERSION_MINOR = 1
const LK_VERSION_PATCH = 0
const LK_VERSION_NUMBER = LK_VERSION_MAJOR * 1000000 + LK_VERSION_MINOR * 1000 + LK_VERSION_PATCH
const LK_ABI_VERSION = 0

"`enum lk_status` (an `int32_t`)."
const lk_status = Int32
const LK_OK = Int32(0)
const LK_ERR_NULL_ARG = Int32(1)
const LK_ERR_INVALID_ARG = Int32(2)
const LK_ERR_SHAPE_MISMATCH = Int32(3)
const LK_ERR_DTYPE = Int32(4)
const LK_ERR_INVALID_PARAM = Int32(5)
const LK_ERR_UNKNOWN_PARAM = Int32(6)
const LK_ERR_UNKNOWN_LOSS = Int32(7)
const LK_ERR_INVALID_TARGET = Int32(8)
const LK_ERR_UNSUPPORTED = Int32(9)
const LK_ERR_BUFFER_TOO_SMALL = Int32(10)
const LK_ERR_INVALID_INPUT = Int32(11)
const LK_ERR_BACKEND_UNAVAILABLE = Int32(100)
const LK_ERR_GPU = Int32(101)
const LK_ERR_OUT_OF_MEMORY = Int32(102)
const LK_ERR_PLUGIN_LOAD = Int32(200)
const LK_ERR_PLUGIN_SYMBOL = Int32(201)
const LK_ERR_PLUGIN_ABI = Int32(202)
const LK_ERR_PLUGIN_DUPLICATE_ID = Int32(203)
const LK_ERR_PLUGIN_INVALID_SPEC = Int32(204)
const LK_ERR_PLUGIN_FAILED = Int32(205)
const LK_ERR_PANIC = Int32(900)
const LK_ERR_INTERNAL = Int32(901)

"`enum lk_backend`."
const lk_backend = Int32
const LK_BACKEND_AUTO = Int32(0)
const LK_BACKEND_CPU = Int32(1)
const LK_BACKEND_WGPU = Int32(2)

"`enum lk_reduction`."
const lk_reduction = Int32
const LK_REDUCTION_NONE = Int32(0)
const LK_REDUCTION_MEAN = Int32(1)
const LK_REDUCTION_SUM = Int32(2)

"`enum lk_param_type`."
const lk_param_type = Int32
const LK_PARAM_F64 = Int32(0)
const LK_PARAM_I64 = Int32(1)
const LK_PARAM_BOOL = Int32(2)
const LK_PARAM_ENUM = Int32(3)

# ---------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------

"Opaque `lk_context` (only used as `Ptr{lk_context}`)."
mutable struct lk_context end

"Opaque `lk_loss` (only used as `Ptr{lk_loss}`)."
mutable struct lk_loss end

"Opaque `lk_buffer`, a device buffer of a WGPU context (only used as `Ptr{lk_buffer}`)."
mutable struct lk_buffer end

struct lk_loss_info
    id::Cstring
    family::Cstring
    summary::Cstring
    source::Cstring
    rows::Cstring
    batch_level::Bool
    in_place::Bool
    n_inputs::Csize_t
    n_params::Csize_t
    n_aux::Csize_t
end

struct lk_dtype
    code::UInt8
    bits::UInt8
    lanes::UInt16
end

struct lk_input_info
    name::Cstring
    shape::Cstring
    doc::Cstring
    dtype::lk_dtype
    differentiable::Bool
    optional::Bool
end

struct lk_param_info
    name::Cstring
    doc::Cstring
    type_::Int32
    default_f64::Cdouble
    min_f64::Cdouble
    max_f64::Cdouble
    min_open::Bool
    max_open::Bool
    default_i64::Int64
    min_i64::Int64
    max_i64::Int64
    default_bool::Bool
    default_enum::Cstring
    n_choices::Csize_t
end

struct lk_aux_info
    name::Cstring
    shape::Cstring
    doc::Cstring
end

struct lk_device
    device_type::Int32
    device_id::Int32
end

struct lk_tensor
    data::Ptr{Cvoid}
    device::lk_device
    ndim::Int32
    dtype::lk_dtype
    shape::Ptr{Int64}
    strides::Ptr{Int64}
    byte_offset::UInt64
end

struct lk_aux_output
    name::Cstring
    tensor::lk_tensor
end

struct lk_plugin_info
    name::Cstring
    version::Cstring
    path::Cstring
    entry::Cstring
    n_losses::Csize_t
end

# ---------------------------------------------------------------------------------------
# Functions (in the header's order)
# ---------------------------------------------------------------------------------------

function lk_context_create(backend, out_ctx)
    ccall((:lk_context_create, liblosskit), lk_status, (Int32, Ptr{Ptr{lk_context}}), backend, out_ctx)
end

function lk_context_free(ctx)
    ccall((:lk_context_free, liblosskit), Cvoid, (Ptr{lk_context},), ctx)
end

function lk_backend_available(backend)
    ccall((:lk_backend_available, liblosskit), Bool, (Int32,), backend)
end

function lk_context_backend(ctx)
    ccall((:lk_context_backend, liblosskit), Int32, (Ptr{lk_context},), ctx)
end

function lk_loss_count(ctx)
    ccall((:lk_loss_count, liblosskit), Csize_t, (Ptr{lk_context},), ctx)
end

function lk_loss_id_at(ctx, index)
    ccall((:lk_loss_id_at, liblosskit), Cstring, (Ptr{lk_context}, Csize_t), ctx, index)
end

function lk_loss_describe(ctx, id, out_info)
    ccall((:lk_loss_describe, liblosskit), lk_status, (Ptr{lk_context}, Cstring, Ptr{lk_loss_info}),
          ctx, id, out_info)
end

function lk_loss_describe_input(ctx, id, index, out_info)
    ccall((:lk_loss_describe_input, liblosskit), lk_status,
          (Ptr{lk_context}, Cstring, Csize_t, Ptr{lk_input_info}), ctx, id, index, out_info)
end

function lk_loss_describe_param(ctx, id, index, out_info)
    ccall((:lk_loss_describe_param, liblosskit), lk_status,
          (Ptr{lk_context}, Cstring, Csize_t, Ptr{lk_param_info}), ctx, id, index, out_info)
end

function lk_loss_param_choice(ctx, id, param_index, choice)
    ccall((:lk_loss_param_choice, liblosskit), Cstring, (Ptr{lk_context}, Cstring, Csize_t, Csize_t),
          ctx, id, param_index, choice)
end

function lk_loss_describe_aux(ctx, id, index, out_info)
    ccall((:lk_loss_describe_aux, liblosskit), lk_status,
          (Ptr{lk_context}, Cstring, Csize_t, Ptr{lk_aux_info}), ctx, id, index, out_info)
end

function lk_last_error_message()
    ccall((:lk_last_error_message, liblosskit), Cstring, ())
end

function lk_last_error_clear()
    ccall((:lk_last_error_clear, liblosskit), Cvoid, ())
end

function lk_loss_create(ctx, id, out_loss)
    ccall((:lk_loss_create, liblosskit), lk_status, (Ptr{lk_context}, Cstring, Ptr{Ptr{lk_loss}}),
          ctx, id, out_loss)
end

function lk_loss_free(loss)
    ccall((:lk_loss_free, liblosskit), Cvoid, (Ptr{lk_loss},), loss)
end

function lk_loss_id(loss)
    ccall((:lk_loss_id, liblosskit), Cstring, (Ptr{lk_loss},), loss)
end

function lk_loss_set_f64(loss, name, value)
    ccall((:lk_loss_set_f64, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Cdouble), loss, name, value)
end

function lk_loss_set_i64(loss, name, value)
    ccall((:lk_loss_set_i64, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Int64), loss, name, value)
end

function lk_loss_set_bool(loss, name, value)
    ccall((:lk_loss_set_bool, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Bool), loss, name, value)
end

function lk_loss_set_enum(loss, name, value)
    ccall((:lk_loss_set_enum, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Cstring), loss, name, value)
end

function lk_loss_get_f64(loss, name, out_value)
    ccall((:lk_loss_get_f64, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Ptr{Cdouble}),
          loss, name, out_value)
end

function lk_loss_get_i64(loss, name, out_value)
    ccall((:lk_loss_get_i64, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Ptr{Int64}),
          loss, name, out_value)
end

function lk_loss_get_bool(loss, name, out_value)
    ccall((:lk_loss_get_bool, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Ptr{Bool}),
          loss, name, out_value)
end

function lk_loss_get_enum(loss, name, out_value)
    ccall((:lk_loss_get_enum, liblosskit), lk_status, (Ptr{lk_loss}, Cstring, Ptr{Ptr{Cchar}}),
          loss, name, out_value)
end

function lk_loss_check(loss)
    ccall((:lk_loss_check, liblosskit), lk_status, (Ptr{lk_loss},), loss)
end

function lk_loss_compute(loss, inputs, n_inputs, reduction, grad_output, loss_out, grads, n_grads,
                         aux, n_aux)
    ccall((:lk_loss_compute, liblosskit), lk_status,
          (Ptr{lk_loss}, Ptr{lk_tensor}, Csize_t, Int32, Ptr{lk_tensor}, Ptr{lk_tensor},
           Ptr{lk_tensor}, Csize_t, Ptr{lk_aux_output}, Csize_t),
          loss, inputs, n_inputs, reduction, grad_output, loss_out, grads, n_grads, aux, n_aux)
end

function lk_buffer_create(ctx, n_bytes, out_buf)
    ccall((:lk_buffer_create, liblosskit), lk_status, (Ptr{lk_context}, UInt64, Ptr{Ptr{lk_buffer}}),
          ctx, n_bytes, out_buf)
end

function lk_buffer_write(buf, offset, src, n_bytes)
    ccall((:lk_buffer_write, liblosskit), lk_status, (Ptr{lk_buffer}, UInt64, Ptr{Cvoid}, Csize_t),
          buf, offset, src, n_bytes)
end

function lk_buffer_read(buf, offset, dst, n_bytes)
    ccall((:lk_buffer_read, liblosskit), lk_status, (Ptr{lk_buffer}, UInt64, Ptr{Cvoid}, Csize_t),
          buf, offset, dst, n_bytes)
end

function lk_buffer_size(buf)
    ccall((:lk_buffer_size, liblosskit), UInt64, (Ptr{lk_buffer},), buf)
end

function lk_buffer_free(buf)
    ccall((:lk_buffer_free, liblosskit), Cvoid, (Ptr{lk_buffer},), buf)
end

function lk_context_device_name(ctx)
    ccall((:lk_context_device_name, liblosskit), Cstring, (Ptr{lk_context},), ctx)
end

function lk_context_device_backend(ctx)
    ccall((:lk_context_device_backend, liblosskit), Cstring, (Ptr{lk_context},), ctx)
end

function lk_context_device_type(ctx)
    ccall((:lk_context_device_type, liblosskit), Cstring, (Ptr{lk_context},), ctx)
end

function lk_context_device_limit(ctx, name, out_value)
    ccall((:lk_context_device_limit, liblosskit), lk_status, (Ptr{lk_context}, Cstring, Ptr{UInt64}),
          ctx, name, out_value)
end

function lk_plugin_load(ctx, path, entry)
    ccall((:lk_plugin_load, liblosskit), lk_status, (Ptr{lk_context}, Cstring, Cstring), ctx, path, entry)
end

function lk_plugin_count(ctx)
    ccall((:lk_plugin_count, liblosskit), Csize_t, (Ptr{lk_context},), ctx)
end

function lk_plugin_describe(ctx, index, out_info)
    ccall((:lk_plugin_describe, liblosskit), lk_status, (Ptr{lk_context}, Csize_t, Ptr{lk_plugin_info}),
          ctx, index, out_info)
end

function lk_plugin_loss_id_at(ctx, index, k)
    ccall((:lk_plugin_loss_id_at, liblosskit), Cstring, (Ptr{lk_context}, Csize_t, Csize_t), ctx, index, k)
end

function lk_status_str(status)
    ccall((:lk_status_str, liblosskit), Cstring, (Int32,), status)
end

function lk_version_number()
    ccall((:lk_version_number, liblosskit), UInt32, ())
end

function lk_version_string()
    ccall((:lk_version_string, liblosskit), Cstring, ())
end

function lk_abi_version()
    ccall((:lk_abi_version, liblosskit), UInt32, ())
end

# Every name above, for `using .LibLossKit`.
for name in names(@__MODULE__; all = true)
    s = string(name)
    if startswith(s, "lk_") || startswith(s, "LK_") || s == "liblosskit"
        @eval export $name
    end
end

end # module
