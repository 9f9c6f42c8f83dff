"""Golden values for `cross_entropy`, from an independent implementation in JAX (float64).

Run with jax 0.10.2 and numpy 2.4.6 (the versions used for the committed file):
    python tests/golden/gen/cross_entropy.py > tests/golden/classification/cross_entropy.json
It installs nothing and is not run by CI.

The reference follows PyTorch's `F.cross_entropy` semantics (class weights, label smoothing
spread over all classes with the weights, ignore_index, weighted mean over the weights of the
contributing targets), PaLM's z-loss (coef * logZ^2, times the target weight) and Gemma 2's
soft-capping cap * tanh(z / cap) applied first. Gradients come from jax.grad.
"""


import jax
import jax.numpy as jnp
import numpy as np

from golden_schema import document, dump, v1_cross_entropy

jax.config.update("jax_enable_x64", True)


def per_row(logits, target, cw, sw, eps, kappa, cap, ignore):
    n, c = logits.shape
    z = cap * jnp.tanh(logits / cap) if cap > 0 else logits
    logp = jax.nn.log_softmax(z, axis=-1)
    lse = jax.scipy.special.logsumexp(z, axis=-1)
    valid = target != ignore
    safe_t = jnp.where(valid, target, 0)
    w = cw if cw is not None else jnp.ones(c)
    wy = w[safe_t]
    nll_y = -jnp.take_along_axis(logp, safe_t[:, None], axis=1)[:, 0]
    smooth = -(logp * w[None, :]).sum(axis=1)
    row = (1 - eps) * wy * nll_y + eps / c * smooth + kappa * wy * lse**2
    s = sw if sw is not None else jnp.ones(n)
    row = jnp.where(valid, row * s, 0.0)
    den = jnp.where(valid, wy * s, 0.0).sum()
    return row, den, jnp.where(valid, lse, 0.0)


def reduce(row, den, reduction, normalizer):
    if reduction == "none":
        return row
    if reduction == "sum":
        return row.sum()
    d = normalizer if normalizer > 0 else den
    return jnp.where(d > 0, row.sum() / jnp.where(d > 0, d, 1.0), 0.0)


def case(rng, name, n, c, reduction, ignore=-100, eps=0.0, kappa=0.0, cap=0.0, normalizer=0.0,
         weights=False, sample=False, n_ignored=0, scale=2.0):
    logits = rng.normal(size=(n, c)) * scale
    target = rng.integers(0, c, size=n)
    target[:n_ignored] = ignore
    cw = rng.uniform(0.2, 2.0, size=c) if weights else None
    sw = rng.uniform(0.0, 2.0, size=n) if sample else None
    t = jnp.asarray(target)
    cwj = None if cw is None else jnp.asarray(cw)
    swj = None if sw is None else jnp.asarray(sw)

    def f(x):
        row, den, _ = per_row(x, t, cwj, swj, eps, kappa, cap, ignore)
        out = reduce(row, den, reduction, normalizer)
        return out.sum(), out

    (_, out), grad = jax.value_and_grad(f, has_aux=True)(jnp.asarray(logits))
    _, _, lse = per_row(jnp.asarray(logits), t, cwj, swj, eps, kappa, cap, ignore)
    return {
        "name": name,
        "n": n,
        "c": c,
        "reduction": reduction,
        "params": {"ignore_index": ignore, "label_smoothing": eps, "z_loss_coef": kappa,
                   "softcap": cap, "normalizer": normalizer},
        "logits": logits.ravel().tolist(),
        "target": target.tolist(),
        "class_weights": None if cw is None else cw.tolist(),
        "sample_weight": None if sw is None else sw.tolist(),
        "loss": np.atleast_1d(np.asarray(out)).tolist(),
        "grad": np.asarray(grad).ravel().tolist(),
        "lse": np.asarray(lse).tolist(),
    }


def main():
    rng = np.random.default_rng(20261127)
    cases = [
        case(rng, "plain mean", 8, 10, "mean"),
        case(rng, "plain sum", 8, 10, "sum"),
        case(rng, "plain none", 8, 10, "none"),
        case(rng, "ignore_index default", 9, 7, "mean", n_ignored=3),
        case(rng, "ignore_index custom", 9, 7, "none", ignore=3, n_ignored=2),
        case(rng, "class weights", 8, 6, "mean", weights=True, n_ignored=2),
        case(rng, "label smoothing", 8, 12, "mean", eps=0.1),
        case(rng, "label smoothing + weights", 8, 12, "mean", eps=0.25, weights=True, n_ignored=1),
        case(rng, "z-loss", 8, 12, "sum", kappa=1e-2),
        case(rng, "softcap", 6, 9, "mean", cap=2.0, scale=4.0),
        case(rng, "everything", 10, 16, "mean", eps=0.2, kappa=1e-3, cap=5.0, weights=True,
             sample=True, n_ignored=2, scale=4.0),
        case(rng, "sample weights none", 7, 5, "none", sample=True),
        case(rng, "normalizer", 8, 10, "mean", normalizer=100.0, n_ignored=2),
        case(rng, "large logits", 4, 50, "mean", scale=30.0),
        case(rng, "one class", 5, 1, "mean", kappa=0.1),
    ]
    dump(document("cross_entropy", "tests/golden/gen/cross_entropy.py",
                  {"jax": jax.__version__, "numpy": np.__version__},
                  [v1_cross_entropy(c) for c in cases]))


if __name__ == "__main__":
    main()
