"""
ChainRulesCore rules for LossKit, loaded when ChainRulesCore is: `rrule`s for calling a
`LossKit.Loss` and for `LossKit.lossvalue`, generic over every loss (builtins and plugins).

The forward pass computes the value only. The pullback calls losskit once more, asking for
the gradient of every differentiable input with `grad_output` set to the incoming
cotangent (a number for `:mean`/`:sum`, a vector for `:none`), so the chain rule is applied
by losskit itself. Integer inputs and absent (`nothing`) inputs get `NoTangent()`.
"""
module LossKitChainRulesCoreExt

using LossKit
using ChainRulesCore

function _input_tangents(l::LossKit.Loss, inputs::Tuple, ȳ, reduction::Symbol, one_based::Bool)
    dy = unthunk(ȳ)
    if dy isa AbstractZero
        return map(x -> x isa AbstractArray{<:AbstractFloat} ? ZeroTangent() : NoTangent(), inputs)
    end
    r = LossKit.compute(l, inputs...; reduction = reduction, grad = true, grad_output = dy,
                        one_based = one_based)
    return map((x, g) -> g === nothing ? NoTangent() : ProjectTo(x)(g), inputs, r.grads)
end

function ChainRulesCore.rrule(l::LossKit.Loss, inputs...; reduction::Symbol = :mean,
                              one_based::Bool = false)
    y = l(inputs...; reduction = reduction, one_based = one_based)
    function losskit_loss_pullback(ȳ)
        return (NoTangent(), _input_tangents(l, inputs, ȳ, reduction, one_based)...)
    end
    return y, losskit_loss_pullback
end

function ChainRulesCore.rrule(::typeof(LossKit.lossvalue), id, inputs...; reduction::Symbol = :mean,
                              one_based::Bool = false, ctx::LossKit.Context = LossKit.default_context(),
                              params...)
    l = LossKit.Loss(id; ctx = ctx, params...)
    y = l(inputs...; reduction = reduction, one_based = one_based)
    function losskit_lossvalue_pullback(ȳ)
        return (NoTangent(), NoTangent(), _input_tangents(l, inputs, ȳ, reduction, one_based)...)
    end
    return y, losskit_lossvalue_pullback
end

ChainRulesCore.@non_differentiable LossKit.describe(::Any)
ChainRulesCore.@non_differentiable LossKit.losses(::Any)

end # module
