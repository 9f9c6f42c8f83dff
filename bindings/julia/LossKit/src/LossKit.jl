"""
    LossKit

Julia interface to losskit: loss functions and their exact gradients, computed by the
losskit library (no maths here).

    using LossKit
    logits = randn(Float32, 10, 32)              # (C, N): one column per sample
    labels = rand(1:10, 32)                      # 1-based classes
    r = LossKit.loss(:cross_entropy, logits, labels; one_based = true, label_smoothing = 0.1)
    r.value, r.grads[1]                          # mean loss, d loss / d logits (10 × 32)

Layout: Julia arrays are column-major, losskit's tensors row-major, so a Julia array of
size `(d1, ..., dk)` is passed, without a copy, as the losskit shape `[dk, ..., d1]`: a
`(C, N)` matrix is losskit's `[N, C]`, a length-`N` vector is `[N]`. Gradients come back
with the size of their input. `Float32` and `Int64` dense arrays are passed as they are;
other element types or non-contiguous arrays are converted (copied) first.

Errors are thrown as `LossKitError(code, msg)`, with the message read right after the
failing call (no yield point between them).

With ChainRulesCore loaded, `LossKit.lossvalue(id, inputs...; kw...)` and calling a `Loss`
object are differentiable (Zygote, Flux...): the pullback asks losskit for the gradient of
every differentiable input with `grad_output` set to the incoming cotangent.
"""
module LossKit

include("LibLossKit.jl")
using .LibLossKit

export LossKitError, Context, Loss, compute, lossvalue, describe, losses, setparam!, getparam,
       checkparams
export load_plugin, plugin_count, Buffer, DeviceArray, upload!, download!, compute_device

# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

"""
    LossKitError(code, msg)

A failed losskit call: `code` is the `lk_status` value (`LibLossKit.LK_ERR_*`), `msg` the
message losskit gave for this failure.
"""
struct LossKitError <: Exception
    code::Int32
    msg::String
end

_str(p::Cstring) = (q = convert(Ptr{UInt8}, p); q == C_NULL ? "" : unsafe_string(q))

"Static text of a status code."
status_text(code::Integer) = _str(lk_status_str(Int32(code)))

function Base.showerror(io::IO, e::LossKitError)
    print(io, "LossKitError: ", status_text(e.code), " (", e.code, ")")
    isempty(e.msg) || print(io, ": ", e.msg)
end

"""
    check(status)

Throw a `LossKitError` for a non-OK status. Call it directly on the result of the `ccall`
(`check(lk_loss_create(...))`): the thread-local message is read at once, before any
yield point could move the task to another thread.
"""
@inline function check(status::Integer)
    status == LK_OK && return nothing
    msg = _str(lk_last_error_message())
    throw(LossKitError(Int32(status), msg))
end

"The library version string, e.g. \"0.1.0\"."
version() = _str(lk_version_string())

"True when the loaded library has the version and ABI this package was written for."
version_matches() = lk_version_number() == LK_VERSION_NUMBER && lk_abi_version() == LK_ABI_VERSION

# ---------------------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------------------

function _backend(b::Symbol)
    b === :auto && return LK_BACKEND_AUTO
    b === :cpu && return LK_BACKEND_CPU
    b === :wgpu && return LK_BACKEND_WGPU
    throw(ArgumentError("backend must be :auto, :cpu or :wgpu, got :$b"))
end

"""
    Context(backend = :auto)

A losskit context (`:auto`, `:cpu` or `:wgpu`). Freed by `close` or by its finalizer.
"""
mutable struct Context
    ptr::Ptr{lk_context}
    function Context(backend::Symbol = :auto)
        out = Ref{Ptr{lk_context}}(C_NULL)
        check(lk_context_create(_backend(backend), out))
        return finalizer(close, new(out[]))
    end
end

Base.unsafe_convert(::Type{Ptr{lk_context}}, c::Context) = c.ptr

function Base.close(c::Context)
    if c.ptr != C_NULL
        lk_context_free(c.ptr)
        c.ptr = C_NULL
    end
    return nothing
end

"Whether a backend (`:auto`, `:cpu`, `:wgpu`) can be used on this machine."
backend_available(b::Symbol) = lk_backend_available(_backend(b))

const _default_context = Ref{Union{Nothing,Context}}(nothing)
const _default_lock = ReentrantLock()

"The context used when none is given (created on first use, backend `:auto`)."
function default_context()
    lock(_default_lock) do
        c = _default_context[]
        if c === nothing || c.ptr == C_NULL
            c = Context(:auto)
            _default_context[] = c
        end
        return c
    end
end

"""
    load_plugin(ctx, path; entry = nothing)

Load a plugin (a shared object) into `ctx` and register its losses. LOADING A PLUGIN RUNS
ITS CODE: load only plugins you trust. `entry = nothing` tries `lk_plugin_init`, then
`lk_plugin_<stem>_init`. Throws `LossKitError` (`LK_ERR_PLUGIN_LOAD`, `LK_ERR_PLUGIN_SYMBOL`,
...; the message names the file); on error nothing is registered.
"""
function load_plugin(ctx::Context, path::AbstractString; entry::Union{Nothing,AbstractString} = nothing)
    GC.@preserve ctx begin
        if entry === nothing
            check(lk_plugin_load(ctx, path, C_NULL))
        else
            check(lk_plugin_load(ctx, path, entry))
        end
    end
    return nothing
end

"Number of plugins loaded into a context."
plugin_count(ctx::Context) = Int(GC.@preserve ctx lk_plugin_count(ctx))

"Ids of every loss a context knows, as symbols."
function losses(ctx::Context = default_context())
    n = GC.@preserve ctx lk_loss_count(ctx)
    return [Symbol(_str(lk_loss_id_at(ctx, k - 1))) for k in 1:n]
end

# ---------------------------------------------------------------------------------------
# Introspection
# ---------------------------------------------------------------------------------------

_letters(s::String) = isempty(s) ? String[] : String[strip(x) for x in split(s, ',')]

struct InputInfo
    name::String
    shape::String           # row-major letters, e.g. "N,C"
    letters::Vector{String}
    doc::String
    isint::Bool              # Int64 (class indices); otherwise Float32
    differentiable::Bool
    optional::Bool
end

struct ParamInfo
    name::String
    doc::String
    type::Symbol             # :f64, :i64, :bool or :enum
    default::Any
    min::Any                 # range of :f64 / :i64 parameters (nothing otherwise)
    max::Any
    min_open::Bool
    max_open::Bool
    choices::Vector{String}  # of :enum parameters
end

struct AuxInfo
    name::String
    shape::String
    letters::Vector{String}
    doc::String
end

struct LossInfo
    id::Symbol
    family::String
    summary::String
    source::String
    rows::String
    batch_level::Bool
    in_place::Bool
    inputs::Vector{InputInfo}
    params::Vector{ParamInfo}
    aux::Vector{AuxInfo}
end

"""
    describe(id; ctx = default_context())

Everything the registry says about a loss: inputs (with their row-major shape letters),
parameters (type, default, range, choices) and auxiliary outputs.
"""
function describe(id::Union{Symbol,AbstractString}; ctx::Context = default_context())
    sid = String(id)
    li = Ref{lk_loss_info}()
    check(lk_loss_describe(ctx, sid, li))
    info = li[]
    inputs = InputInfo[]
    for k in 1:Int(info.n_inputs)
        ii = Ref{lk_input_info}()
        check(lk_loss_describe_input(ctx, sid, k - 1, ii))
        x = ii[]
        shape = _str(x.shape)
        push!(inputs, InputInfo(_str(x.name), shape, _letters(shape), _str(x.doc),
                                x.dtype.code == LK_DTYPE_CODE_INT, x.differentiable, x.optional))
    end
    params = ParamInfo[]
    for k in 1:Int(info.n_params)
        pr = Ref{lk_param_info}()
        check(lk_loss_describe_param(ctx, sid, k - 1, pr))
        p = pr[]
        choices = String[]
        for c in 1:Int(p.n_choices)
            s = lk_loss_param_choice(ctx, sid, k - 1, c - 1)
            if convert(Ptr{UInt8}, s) == C_NULL
                throw(LossKitError(LK_ERR_INTERNAL, _str(lk_last_error_message())))
            end
            push!(choices, _str(s))
        end
        t = p.type_
        type, default, lo, hi = if t == LK_PARAM_F64
            (:f64, p.default_f64, p.min_f64, p.max_f64)
        elseif t == LK_PARAM_I64
            (:i64, p.default_i64, p.min_i64, p.max_i64)
        elseif t == LK_PARAM_BOOL
            (:bool, p.default_bool, nothing, nothing)
        else
            (:enum, _str(p.default_enum), nothing, nothing)
        end
        push!(params, ParamInfo(_str(p.name), _str(p.doc), type, default, lo, hi,
                                p.min_open, p.max_open, choices))
    end
    aux = AuxInfo[]
    for k in 1:Int(info.n_aux)
        ar = Ref{lk_aux_info}()
        check(lk_loss_describe_aux(ctx, sid, k - 1, ar))
        a = ar[]
        shape = _str(a.shape)
        push!(aux, AuxInfo(_str(a.name), shape, _letters(shape), _str(a.doc)))
    end
    return LossInfo(Symbol(_str(info.id)), _str(info.family), _str(info.summary),
                    _str(info.source), _str(info.rows), info.batch_level, info.in_place,
                    inputs, params, aux)
end

# ---------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------

"""
    Loss(id; ctx = default_context(), params...)

A configured loss, e.g. `Loss(:cross_entropy; label_smoothing = 0.1, ignore_index = -1)`.
Parameters are set by Julia type: `Bool` → bool, `Integer` → i64, `Real` → f64,
`Symbol`/`String` → enum choice. Freed by `close` or by its finalizer. Configure it from one
task, then compute from any number of tasks.
"""
mutable struct Loss
    ptr::Ptr{lk_loss}
    info::LossInfo
end

function Loss(id::Union{Symbol,AbstractString}; ctx::Context = default_context(), params...)
    info = describe(id; ctx = ctx)
    out = Ref{Ptr{lk_loss}}(C_NULL)
    check(lk_loss_create(ctx, String(id), out))
    l = finalizer(close, Loss(out[], info))
    for (name, value) in params
        setparam!(l, name, value)
    end
    return l
end

Base.unsafe_convert(::Type{Ptr{lk_loss}}, l::Loss) = l.ptr

function Base.close(l::Loss)
    if l.ptr != C_NULL
        lk_loss_free(l.ptr)
        l.ptr = C_NULL
    end
    return nothing
end

"""
    setparam!(loss, name, value)

Set a parameter. A value out of range throws `LossKitError` with `LK_ERR_INVALID_PARAM`
(the previous value is kept; never clamped); an unknown name `LK_ERR_UNKNOWN_PARAM`.
"""
function setparam!(l::Loss, name::Union{Symbol,AbstractString}, value)
    n = String(name)
    if value isa Bool
        check(lk_loss_set_bool(l, n, value))
    elseif value isa Integer
        check(lk_loss_set_i64(l, n, Int64(value)))
    elseif value isa Real
        check(lk_loss_set_f64(l, n, Float64(value)))
    elseif value isa Union{Symbol,AbstractString}
        check(lk_loss_set_enum(l, n, String(value)))
    else
        throw(ArgumentError("$(l.info.id): parameter $n: unsupported value type $(typeof(value))"))
    end
    return l
end

"""
    getparam(loss, name)

Current value of a parameter: a `Float64`, an `Int64`, a `Bool`, or the chosen choice of an
`:enum` parameter as a `String`.
"""
function getparam(l::Loss, name::Union{Symbol,AbstractString})
    n = String(name)
    idx = findfirst(p -> p.name == n, l.info.params)
    type = idx === nothing ? :f64 : l.info.params[idx].type
    if type === :i64
        vi = Ref{Int64}(0)
        check(lk_loss_get_i64(l, n, vi))
        return vi[]
    elseif type === :bool
        vb = Ref{Bool}(false)
        check(lk_loss_get_bool(l, n, vb))
        return vb[]
    elseif type === :enum
        # The choice name lives in the loss's registry entry; copied into a String.
        vs = Ref{Ptr{Cchar}}(C_NULL)
        check(lk_loss_get_enum(l, n, vs))
        return unsafe_string(convert(Ptr{UInt8}, vs[]))
    end
    vf = Ref{Cdouble}(0.0)
    check(lk_loss_get_f64(l, n, vf))
    return vf[]
end

"""
    checkparams(loss)

Check the parameters together, as every `compute` does first. `setparam!` checks each value
against its own range only, so parameters may be set in any order; a combination the loss
refuses throws `LossKitError` with `LK_ERR_INVALID_PARAM` and a message naming the
parameters.
"""
function checkparams(l::Loss)
    check(lk_loss_check(l))
    return l
end

# ---------------------------------------------------------------------------------------
# Compute
# ---------------------------------------------------------------------------------------

const _F32 = lk_dtype(LK_DTYPE_CODE_FLOAT, UInt8(32), UInt16(1))
const _I64 = lk_dtype(LK_DTYPE_CODE_INT, UInt8(64), UInt16(1))
const _HOST = lk_device(LK_DEVICE_CPU, Int32(0))

"Row-major losskit shape of a column-major Julia array: the sizes reversed."
_cshape(x::AbstractArray) = Int64[size(x, d) for d in ndims(x):-1:1]

# A view of `x` (kept alive by the caller with GC.@preserve) with the row-major `shape`.
function _tensor(x::DenseArray, shape::Vector{Int64})
    dt = eltype(x) === Int64 ? _I64 : _F32
    return lk_tensor(pointer(x), _HOST, Int32(length(shape)), dt, pointer(shape),
                     Ptr{Int64}(C_NULL), UInt64(0))
end
_absent() = lk_tensor(C_NULL, _HOST, Int32(0), _F32, Ptr{Int64}(C_NULL), Ptr{Int64}(C_NULL), UInt64(0))

_asfloat(x::DenseArray{Float32}) = x
_asfloat(x::AbstractArray{<:Real}) = Array{Float32}(x)
_asfloat(x::Real) = fill(Float32(x))
_asint(x::DenseArray{Int64}) = x
_asint(x::AbstractArray{<:Integer}) = Array{Int64}(x)

function _reduction(r::Symbol)
    r === :mean && return LK_REDUCTION_MEAN
    r === :sum && return LK_REDUCTION_SUM
    r === :none && return LK_REDUCTION_NONE
    throw(ArgumentError("reduction must be :mean, :sum or :none, got :$r"))
end

# ---------------------------------------------------------------------------------------
# Device buffers
# ---------------------------------------------------------------------------------------

"""
    Buffer(ctx, nbytes)

A device buffer on the GPU of a `:wgpu` context (`lk_buffer`); a `:cpu` context throws
`LK_ERR_UNSUPPORTED`. Freed by `close` or its finalizer; it keeps the GPU device alive.
Copy data in and out with `upload!` / `download!` (byte offsets, multiples of 4) and view
it with `DeviceArray` for `compute_device`.
"""
mutable struct Buffer
    ptr::Ptr{lk_buffer}
    function Buffer(ctx::Context, nbytes::Integer)
        out = Ref{Ptr{lk_buffer}}(C_NULL)
        GC.@preserve ctx check(lk_buffer_create(ctx, UInt64(nbytes), out))
        return finalizer(close, new(out[]))
    end
end

Base.unsafe_convert(::Type{Ptr{lk_buffer}}, b::Buffer) = b.ptr

function Base.close(b::Buffer)
    if b.ptr != C_NULL
        lk_buffer_free(b.ptr)
        b.ptr = C_NULL
    end
    return nothing
end

"Size of a device buffer in bytes."
Base.sizeof(b::Buffer) = Int(GC.@preserve b lk_buffer_size(b))

_livebuf(b::Buffer) = b.ptr == C_NULL ? throw(LossKitError(LK_ERR_NULL_ARG, "Buffer used after close")) : b

"Copy `x` (`Float32` or `Int64` elements, dense) to byte `offset` of `b`."
function upload!(b::Buffer, x::DenseArray{T}; offset::Integer = 0) where {T<:Union{Float32,Int64}}
    _livebuf(b)
    GC.@preserve b x check(lk_buffer_write(b, UInt64(offset), pointer(x), sizeof(x)))
    return b
end

"Fill `dst` from byte `offset` of `b` (after the computes that write `b`)."
function download!(dst::DenseArray{T}, b::Buffer; offset::Integer = 0) where {T<:Union{Float32,Int64}}
    _livebuf(b)
    GC.@preserve b dst check(lk_buffer_read(b, UInt64(offset), pointer(dst), sizeof(dst)))
    return dst
end

"""
    DeviceArray(buf, T, dims...; offset = 0)

A `Float32` or `Int64` array of Julia (column-major) size `dims` stored in `buf` from
byte `offset`: losskit sees the row-major shape `reverse(dims)`, like host arrays.
"""
struct DeviceArray
    buf::Buffer
    eltype::DataType
    dims::Vector{Int64}
    offset::UInt64
    function DeviceArray(buf::Buffer, T::Type, dims::Integer...; offset::Integer = 0)
        T === Float32 || T === Int64 || throw(ArgumentError("DeviceArray: Float32 or Int64, got $T"))
        need = offset + sizeof(T) * prod(Int64[dims...]; init = 1)
        need <= sizeof(buf) || throw(LossKitError(LK_ERR_BUFFER_TOO_SMALL,
            "a device buffer of $(sizeof(buf)) bytes cannot hold $T$(collect(dims)) at byte offset $offset"))
        return new(buf, T, Int64[dims...], UInt64(offset))
    end
end

const _LKBUFFER = lk_device(LK_DEVICE_LKBUFFER, Int32(0))

function _tensor(d::DeviceArray, shape::Vector{Int64})
    _livebuf(d.buf)
    return lk_tensor(Ptr{Cvoid}(d.buf.ptr), _LKBUFFER, Int32(length(shape)), d.eltype === Int64 ? _I64 : _F32,
                     pointer(shape), Ptr{Int64}(C_NULL), d.offset)
end

"""
    compute_device(loss, inputs::DeviceArray...; grads = (), reduction = :mean)

Compute with inputs in device buffers; `grads[k]` (a `Float32` `DeviceArray` or
`nothing`) receives the gradient of input `k` on the device. Returns the loss in host
memory: a `Float32` for `:mean`/`:sum`, a `Vector{Float32}` for `:none`.
"""
function compute_device(l::Loss, inputs::DeviceArray...; grads = (), reduction::Symbol = :mean)
    info = l.info
    red = _reduction(reduction)
    shapes = Vector{Int64}[reverse(d.dims) for d in inputs]
    nout = 1
    if red == LK_REDUCTION_NONE
        idx = findfirst(k -> !isempty(info.inputs[k].letters) && info.inputs[k].letters[1] == info.rows,
                        eachindex(inputs))
        idx === nothing && throw(LossKitError(LK_ERR_NULL_ARG, "$(info.id): cannot size '$(info.rows)'"))
        nout = shapes[idx][1]
    end
    lossbuf = zeros(Float32, nout)
    lossshape = red == LK_REDUCTION_NONE ? Int64[nout] : Int64[]
    gshapes = Vector{Int64}[g === nothing ? Int64[] : reverse(g.dims) for g in grads]
    GC.@preserve l inputs grads shapes gshapes lossbuf lossshape begin
        tin = lk_tensor[_tensor(d, shapes[k]) for (k, d) in enumerate(inputs)]
        tgr = lk_tensor[g === nothing ? _absent() : _tensor(g, gshapes[k]) for (k, g) in enumerate(grads)]
        tout = Ref(_tensor(lossbuf, lossshape))
        GC.@preserve tin tgr tout begin
            check(lk_loss_compute(l, tin, length(tin), red, Ptr{lk_tensor}(C_NULL), tout,
                                  isempty(tgr) ? Ptr{lk_tensor}(C_NULL) : tgr, length(tgr),
                                  Ptr{lk_aux_output}(C_NULL), 0))
        end
    end
    return red == LK_REDUCTION_NONE ? lossbuf : lossbuf[1]
end

"""
    compute(loss, inputs...; reduction = :mean, grad = true, grad_output = nothing,
            aux = (), one_based = false)

Compute `loss` on `inputs` (in the loss's input order; `nothing` for an absent optional
input). Returns `(value, grads, aux)`:
- `value`: a `Float32` for `:mean`/`:sum`, a `Vector{Float32}` (one per sample) for `:none`;
- `grads`: a tuple with one entry per input: the gradient (same size as the input) for
  differentiable inputs when `grad`, else `nothing`;
- `aux`: a `Dict` of the asked auxiliary outputs (sizes reversed like inputs).
`grad_output` scales the gradients (a number for `:mean`/`:sum`, a vector for `:none`).
`one_based = true` shifts integer (class index) inputs from 1-based to 0-based (a copy);
values equal to the loss's `ignore_index` are kept as they are.
"""
function compute(l::Loss, inputs...; reduction::Symbol = :mean, grad::Bool = true,
                 grad_output = nothing, aux = (), one_based::Bool = false)
    info = l.info
    if length(inputs) > length(info.inputs)
        throw(LossKitError(LK_ERR_INVALID_ARG,
                           "$(info.id): $(length(inputs)) inputs given, the loss takes $(length(info.inputs))"))
    end
    red = _reduction(reduction)
    ignore = typemin(Int64)
    if one_based && any(p -> p.name == "ignore_index", info.params)
        ignore = getparam(l, :ignore_index)
    end
    arrays = Any[]
    for (k, x) in enumerate(inputs)
        if x === nothing
            push!(arrays, nothing)
        elseif info.inputs[k].isint
            a = _asint(x)
            if one_based
                a = map(t -> t == ignore ? t : t - 1, a)
            end
            push!(arrays, a)
        else
            push!(arrays, _asfloat(x))
        end
    end
    shapes = Vector{Int64}[a === nothing ? Int64[] : _cshape(a) for a in arrays]

    dims = Dict{String,Int64}()
    for (k, a) in enumerate(arrays)
        a === nothing && continue
        for (axis, letter) in enumerate(info.inputs[k].letters)
            axis <= length(shapes[k]) && get!(dims, letter, shapes[k][axis])
        end
    end
    function letter_size(letter)
        n = tryparse(Int64, letter)
        n === nothing || return n
        haskey(dims, letter) && return dims[letter]
        throw(LossKitError(LK_ERR_NULL_ARG, "$(info.id): cannot size '$letter': no present input has that dimension"))
    end

    nout = red == LK_REDUCTION_NONE ? letter_size(info.rows) : 1
    lossbuf = zeros(Float32, nout)
    lossshape = red == LK_REDUCTION_NONE ? Int64[nout] : Int64[]

    grads = Any[nothing for _ in arrays]
    if grad
        for (k, a) in enumerate(arrays)
            if a !== nothing && info.inputs[k].differentiable
                grads[k] = zeros(Float32, size(a))
            end
        end
    end

    gobuf = grad_output === nothing ? nothing :
            grad_output isa Number ? Float32[grad_output] : Vector{Float32}(vec(grad_output))
    goshape = gobuf === nothing ? Int64[] : red == LK_REDUCTION_NONE ? Int64[length(gobuf)] : Int64[]

    auxnames = String[String(a) for a in aux]
    auxbufs = Array{Float32}[]
    auxshapes = Vector{Int64}[]
    for name in auxnames
        idx = findfirst(a -> a.name == name, info.aux)
        idx === nothing && throw(LossKitError(LK_ERR_INVALID_ARG, "$(info.id): no auxiliary output '$name'"))
        cshape = Int64[letter_size(x) for x in info.aux[idx].letters]
        push!(auxshapes, cshape)
        push!(auxbufs, zeros(Float32, reverse(cshape)...))
    end

    GC.@preserve arrays shapes lossbuf lossshape grads gobuf goshape auxnames auxbufs auxshapes begin
        tin = lk_tensor[a === nothing ? _absent() : _tensor(a, shapes[k]) for (k, a) in enumerate(arrays)]
        tgr = lk_tensor[g === nothing ? _absent() : _tensor(g, shapes[k]) for (k, g) in enumerate(grads)]
        tout = Ref(_tensor(lossbuf, lossshape))
        tgo = gobuf === nothing ? nothing : Ref(_tensor(gobuf, goshape))
        taux = lk_aux_output[lk_aux_output(Base.unsafe_convert(Cstring, auxnames[i]),
                                           _tensor(auxbufs[i], auxshapes[i])) for i in eachindex(auxnames)]
        GC.@preserve tin tgr tout tgo taux begin
            check(lk_loss_compute(l, tin, length(tin), red,
                                  tgo === nothing ? Ptr{lk_tensor}(C_NULL) : tgo, tout,
                                  grad ? tgr : Ptr{lk_tensor}(C_NULL), grad ? length(tgr) : 0,
                                  isempty(taux) ? Ptr{lk_aux_output}(C_NULL) : taux, length(taux)))
        end
    end

    value = red == LK_REDUCTION_NONE ? lossbuf : lossbuf[1]
    auxout = Dict{String,Array{Float32}}(auxnames[i] => auxbufs[i] for i in eachindex(auxnames))
    return (value = value, grads = Tuple(grads), aux = auxout)
end

"""
    loss(id, inputs...; reduction = :mean, grad = true, grad_output = nothing, aux = (),
         one_based = false, ctx = default_context(), params...)

One-shot form of `compute`: creates the loss `id` with `params`, computes, frees it.

    r = LossKit.loss(:cross_entropy, logits, targets; label_smoothing = 0.1)
    r.value, r.grads[1]
"""
function loss(id::Union{Symbol,AbstractString}, inputs...; reduction::Symbol = :mean,
              grad::Bool = true, grad_output = nothing, aux = (), one_based::Bool = false,
              ctx::Context = default_context(), params...)
    l = Loss(id; ctx = ctx, params...)
    try
        return compute(l, inputs...; reduction = reduction, grad = grad, grad_output = grad_output,
                       aux = aux, one_based = one_based)
    finally
        close(l)
    end
end

"""
    (loss::Loss)(inputs...; reduction = :mean, one_based = false)

The loss value only (no gradients): the form automatic differentiation uses.
"""
function (l::Loss)(inputs...; reduction::Symbol = :mean, one_based::Bool = false)
    return compute(l, inputs...; reduction = reduction, grad = false, one_based = one_based).value
end

"""
    lossvalue(id, inputs...; reduction = :mean, one_based = false, ctx = default_context(), params...)

The loss value only; differentiable through the ChainRulesCore extension.
"""
function lossvalue(id::Union{Symbol,AbstractString}, inputs...; reduction::Symbol = :mean,
                   one_based::Bool = false, ctx::Context = default_context(), params...)
    l = Loss(id; ctx = ctx, params...)
    try
        return l(inputs...; reduction = reduction, one_based = one_based)
    finally
        close(l)
    end
end

end # module
