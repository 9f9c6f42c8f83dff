# Tests of the Julia binding. They need a Julia runtime and a built library
# (`cargo build --release`); see bindings/README.md for what has and has not been run.
using Test
using LossKit
using LossKit.LibLossKit
using ChainRulesCore

# Label-smoothed softmax cross-entropy of one column (a sample) and its gradient, in Float64.
function ce_ref(z::AbstractVector, y::Integer, eps::Float64)
    zz = Float64.(z)
    m = maximum(zz)
    lse = m + log(sum(exp.(zz .- m)))
    p = exp.(zz .- lse)
    C = length(zz)
    onehot = [c == y ? 1.0 : 0.0 for c in 1:C]
    value = (1 - eps) * (lse - zz[y]) + eps / C * (C * lse - sum(zz))
    grad = (1 - eps) .* (p .- onehot) .+ eps / C .* (C .* p .- 1)
    return value, grad
end

const C, N = 4, 3
const logits = Float32[0.5 1.5 -2.0; -1.0 0.25 0.0; 2.0 -0.5 0.75; 0.0 3.0 1.0]   # (C, N)
const labels0 = Int64[2, 0, 3]   # 0-based
const labels1 = labels0 .+ 1     # 1-based

@testset "LossKit" begin
    @testset "library and registry" begin
        @test LossKit.version_matches()
        @test LossKit.version() == "$(LK_VERSION_MAJOR).$(LK_VERSION_MINOR).$(LK_VERSION_PATCH)"
        ctx = Context(:cpu)
        ids = losses(ctx)
        @test :cross_entropy in ids
        for id in ids
            info = describe(id; ctx = ctx)
            @test info.id == id
            @test !isempty(info.inputs)
        end
        info = describe(:cross_entropy)
        @test info.rows == "N"
        @test info.inputs[1].name == "logits" && info.inputs[1].letters == ["N", "C"]
        @test info.inputs[1].differentiable && !info.inputs[2].differentiable && info.inputs[2].isint
        ls = info.params[findfirst(p -> p.name == "label_smoothing", info.params)]
        @test ls.type === :f64 && ls.default == 0.0 && ls.min == 0.0 && ls.max == 1.0
        close(ctx)
        close(ctx)   # idempotent
    end

    @testset "column-major (C, N) maps to row-major [N, C]" begin
        for eps in (0.0, 0.1)
            r = LossKit.loss(:cross_entropy, logits, labels1; one_based = true, label_smoothing = eps)
            want = 0.0
            wantg = zeros(C, N)
            for n in 1:N
                v, g = ce_ref(logits[:, n], labels1[n], eps)
                want += v
                wantg[:, n] = g
            end
            @test r.value ≈ want / N rtol = 1e-5
            @test size(r.grads[1]) == size(logits)
            @test r.grads[1] ≈ wantg ./ N rtol = 1e-4 atol = 1e-6
            @test r.grads[2] === nothing
        end
        # 0-based labels give the same result without one_based.
        a = LossKit.loss(:cross_entropy, logits, labels0)
        b = LossKit.loss(:cross_entropy, logits, labels1; one_based = true)
        @test a.value == b.value && a.grads[1] == b.grads[1]
        # ignore_index is kept as is by the 1-based shift.
        c = LossKit.loss(:cross_entropy, logits, [3, -100, 4]; one_based = true)
        @test c.value ≈ (ce_ref(logits[:, 1], 3, 0.0)[1] + ce_ref(logits[:, 3], 4, 0.0)[1]) / 2 rtol = 1e-5
        @test all(c.grads[1][:, 2] .== 0)
    end

    @testset "reductions, grad_output, optional inputs, aux" begin
        l = Loss(:cross_entropy)
        none = compute(l, logits, labels0; reduction = :none, aux = ("lse",))
        @test length(none.value) == N
        @test sum(none.value) ≈ compute(l, logits, labels0; reduction = :sum, grad = false).value rtol = 1e-6
        @test size(none.aux["lse"]) == (N,)
        base = compute(l, logits, labels0)
        scaled = compute(l, logits, labels0; grad_output = 2.5f0)
        @test scaled.grads[1] ≈ 2.5f0 .* base.grads[1]
        w = compute(l, logits, labels0, ones(Float32, C), nothing)
        @test w.value ≈ base.value
        @test compute(l, Float64.(logits), labels0).value ≈ base.value   # converted input
        @test getparam(l, :ignore_index) == -100
        setparam!(l, :ignore_index, -1)
        @test getparam(l, :ignore_index) == -1
        close(l)
    end

    @testset "errors" begin
        err(f) = try
            f()
            nothing
        catch e
            e
        end
        e = err(() -> Loss(:no_such_loss))
        @test e isa LossKitError && e.code == LK_ERR_UNKNOWN_LOSS && occursin("no_such_loss", e.msg)
        l = Loss(:cross_entropy)
        e = err(() -> setparam!(l, :label_smoothing, 1.5))
        @test e isa LossKitError && e.code == LK_ERR_INVALID_PARAM && occursin("label_smoothing", e.msg)
        @test getparam(l, :label_smoothing) == 0.0
        e = err(() -> setparam!(l, :nope, 1.0))
        @test e isa LossKitError && e.code == LK_ERR_UNKNOWN_PARAM
        # Order-free configuration: a combination is refused by checkparams and compute.
        d = Loss(:dpo)
        @test getparam(d, :loss_type) == "sigmoid"
        setparam!(d, :loss_type, :exo_pair)
        @test getparam(d, :loss_type) == "exo_pair"
        e = err(() -> checkparams(d))
        @test e isa LossKitError && e.code == LK_ERR_INVALID_PARAM &&
              occursin("label_smoothing", e.msg) && occursin("loss_type", e.msg)
        setparam!(d, :label_smoothing, 0.1)
        @test checkparams(d) === d
        close(d)
        c = Loss(:cut_cross_entropy)
        @test getparam(c, :filter_e_grad) === true
        setparam!(c, :filter_e_grad, false)
        @test getparam(c, :filter_e_grad) === false
        close(c)
        e = err(() -> compute(l, logits, Int64[2, 4, 3]))
        @test e isa LossKitError && e.code == LK_ERR_INVALID_TARGET && occursin("target[1] = 4", e.msg)
        e = err(() -> compute(l, logits, Int64[1, 2]))
        @test e isa LossKitError && e.code == LK_ERR_SHAPE_MISMATCH
        e = err(() -> compute(l, logits))
        @test e isa LossKitError && e.code == LK_ERR_NULL_ARG
        e = err(() -> compute(l, logits, labels0, Float32[1, -1, 1, 1]))
        @test e isa LossKitError && e.code == LK_ERR_INVALID_INPUT
        @test occursin("invalid", sprint(showerror, LossKitError(LK_ERR_INVALID_PARAM, "x")))
    end

    @testset "rrules use grad_output, for every input position" begin
        l = Loss(:cross_entropy; label_smoothing = 0.1)
        y, back = rrule(l, logits, labels0)
        @test y ≈ compute(l, logits, labels0).value
        t = back(2.0f0)
        @test t[1] isa NoTangent && t[3] isa NoTangent
        @test t[2] ≈ 2 .* compute(l, logits, labels0).grads[1] rtol = 1e-6
        yn, backn = rrule(l, logits, labels0; reduction = :none)
        dy = Float32[1, 0, -2]
        tn = backn(dy)
        full = compute(l, logits, labels0; reduction = :none, grad_output = dy).grads[1]
        @test tn[2] ≈ full
        @test all(tn[2][:, 2] .== 0)
        z = back(ZeroTangent())
        @test z[2] isa ZeroTangent
        y2, back2 = rrule(lossvalue, :cross_entropy, logits, labels1; one_based = true, label_smoothing = 0.1)
        @test y2 ≈ y
        t2 = back2(1.0f0)
        @test t2[1] isa NoTangent && t2[2] isa NoTangent && t2[4] isa NoTangent
        @test t2[3] ≈ compute(l, logits, labels0).grads[1]
        # Finite differences on the value through the rule's forward.
        h = 1e-2
        for idx in (1, 6, 11)
            zp = copy(logits); zp[idx] += h
            zm = copy(logits); zm[idx] -= h
            fd = (l(zp, labels0) - l(zm, labels0)) / (2h)
            @test fd ≈ t[2][idx] / 2 rtol = 2e-2 atol = 1e-3
        end
    end

    @testset "tasks on threads share a loss" begin
        l = Loss(:cross_entropy; label_smoothing = 0.2)
        want = compute(l, logits, labels0)
        ok = fill(false, 16)
        Threads.@threads for k in 1:16
            good = true
            for _ in 1:50
                r = compute(l, logits, labels0)
                good &= r.value == want.value && r.grads[1] == want.grads[1]
            end
            ok[k] = good
        end
        @test all(ok)
    end

    @testset "plugins" begin
        dir = mktempdir()
        so = joinpath(dir, "libasl.so")
        root = joinpath(@__DIR__, "..", "..", "..", "..")
        run(`cc -std=c99 -O2 -shared -fPIC -I$(joinpath(root, "include")) -o $so $(joinpath(root, "plugins", "example_c", "asl.c")) -lm`)
        ctx = Context(:cpu)
        err = try
            load_plugin(ctx, joinpath(dir, "libnot_there.so")); nothing
        catch e
            e
        end
        @test err isa LossKitError && err.code == LK_ERR_PLUGIN_LOAD && occursin("libnot_there.so", err.msg)
        @test plugin_count(ctx) == 0
        load_plugin(ctx, so)
        @test plugin_count(ctx) == 1
        @test :asymmetric_loss in losses(ctx)
        l = Loss(:asymmetric_loss; ctx = ctx, gamma_neg = 2.0, clip = 0.0)
        x = Float32[0.5 1.5 -2; -1 0.25 0.1; 2 -0.5 0.75; 0 3 1]      # (C, N) = (4, 3)
        y = Float32[1 0 0; 0 0 1; 1 1 0; 0 1 0]
        sp(v) = max(v, 0) + log1p(exp(-abs(v)))
        function elem(v, t)
            p = 1 / (1 + exp(-v))
            return t * (1 - p) * sp(-v) + (1 - t) * p^2 * sp(v)
        end
        r = compute(l, x, y; reduction = :none)
        @test r.value ≈ [sum(elem(Float64(x[c, i]), Float64(y[c, i])) for c in 1:4) for i in 1:3] rtol = 1e-5
        @test r.grads[2] === nothing && size(r.grads[1]) == size(x)
    end

    @testset "device buffers" begin
        if !LossKit.backend_available(:wgpu)
            if get(ENV, "LOSSKIT_REQUIRE_GPU", "") == "1"
                error("LOSSKIT_REQUIRE_GPU=1 but lk_backend_available(LK_BACKEND_WGPU) is false")
            end
            @info "device buffers skipped: no GPU adapter (set LOSSKIT_REQUIRE_GPU=1 to fail instead)"
        else
            @test_throws LossKitError Buffer(Context(:cpu), 64)
            gpu = Context(:wgpu)
            C, N = size(logits)
            xb = upload!(Buffer(gpu, 16 + 4 * C * N), logits; offset = 16)
            yb = upload!(Buffer(gpu, 8 * N), Int64.(labels0))
            gb = Buffer(gpu, 4 * C * N)
            @test download!(zeros(Float32, C, N), xb; offset = 16) == logits
            lg = Loss(:cross_entropy; ctx = gpu, label_smoothing = 0.1)
            lc = Loss(:cross_entropy; ctx = Context(:cpu), label_smoothing = 0.1)
            want = compute(lc, logits, labels0)
            v = compute_device(lg, DeviceArray(xb, Float32, C, N; offset = 16), DeviceArray(yb, Int64, N);
                               grads = (DeviceArray(gb, Float32, C, N),))
            @test v ≈ want.value rtol = 1e-5
            @test download!(zeros(Float32, C, N), gb) ≈ want.grads[1] rtol = 1e-4
            @test_throws LossKitError DeviceArray(gb, Float32, C, N; offset = 4)
            close(xb); close(yb); close(gb)
        end
    end
end
