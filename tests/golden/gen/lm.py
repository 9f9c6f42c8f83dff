"""Golden values for `cut_cross_entropy`, from an independent dense implementation in JAX
(float64): logits = e @ c.T + bias are materialised, then soft-capped cross-entropy with
z-loss, sample weights, ignore_index and the reduction; gradients come from jax.vjp.

Run with jax 0.10.2 and numpy 2.4.6 (the versions used for the committed file):
    python tests/golden/gen/lm.py > tests/golden/lm/cut_cross_entropy.json
It installs nothing and is not run by CI.

The math is the one of the loss's module doc: z = cap * tanh(a / cap) (when cap > 0),
l_i = lse_i - z_{i,t_i} + lambda * lse_i^2 on rows whose target is not ignore_index, times the
sample weight; `mean` divides by the sum of the sample weights of the contributing rows (or by
`normalizer` when it is positive), and gives 0 when that is 0.
"""


import jax
import jax.numpy as jnp
import numpy as np

from golden_schema import document, dump, v1_cut_cross_entropy

jax.config.update("jax_enable_x64", True)


def per_row(e, c, b, t, sw, cap, lam, ignore):
    a = e @ c.T + b[None, :]
    z = cap * jnp.tanh(a / cap) if cap > 0 else a
    lse = jax.scipy.special.logsumexp(z, axis=-1)
    valid = t != ignore
    safe_t = jnp.where(valid, t, 0)
    zt = jnp.take_along_axis(z, safe_t[:, None], axis=1)[:, 0]
    row = lse - zt + lam * lse**2
    row = jnp.where(valid, row * sw, 0.0)
    den = jnp.where(valid, sw, 0.0).sum()
    return row, den, jnp.where(valid, lse, 0.0)


def reduce(row, den, reduction, normalizer):
    if reduction == "none":
        return row
    if reduction == "sum":
        return row.sum()
    d = normalizer if normalizer > 0 else den
    return jnp.where(d > 0, row.sum() / jnp.where(d > 0, d, 1.0), 0.0)


def case(rng, name, n, d, v, reduction, ignore=-100, cap=0.0, lam=0.0, normalizer=0.0,
         bias=False, sample=False, n_ignored=0, grad_output=None, scale=1.0, tiles=None):
    e = rng.normal(size=(n, d)) * scale
    c = rng.normal(size=(v, d)) * scale
    t = rng.integers(0, v, size=n)
    if n_ignored:
        t[rng.permutation(n)[:n_ignored]] = ignore
    b = rng.normal(size=v) if bias else None
    sw = rng.uniform(0.0, 2.0, size=n) if sample else None
    tj = jnp.asarray(t)
    bj = jnp.zeros(v) if b is None else jnp.asarray(b)
    swj = jnp.ones(n) if sw is None else jnp.asarray(sw)

    def f(ee, cc, bb):
        row, den, _ = per_row(ee, cc, bb, tj, swj, cap, lam, ignore)
        return reduce(row, den, reduction, normalizer)

    out, vjp = jax.vjp(f, jnp.asarray(e), jnp.asarray(c), bj)
    if reduction == "none":
        go = rng.normal(size=n) if grad_output == "random" else np.ones(n)
    else:
        go = np.array([grad_output]) if isinstance(grad_output, float) else np.ones(1)
    ct = jnp.asarray(go) if reduction == "none" else jnp.asarray(go[0])
    de, dc, db = vjp(ct)
    _, _, lse = per_row(jnp.asarray(e), jnp.asarray(c), bj, tj, swj, cap, lam, ignore)
    params = {"ignore_index": ignore, "softcap": cap, "z_loss_coef": lam,
              "normalizer": normalizer}
    if tiles is not None:
        params["block_rows"], params["block_vocab"] = tiles
    return {
        "name": name,
        "n": n,
        "d": d,
        "v": v,
        "reduction": reduction,
        "params": params,
        "e": e.ravel().tolist(),
        "c": c.ravel().tolist(),
        "targets": t.tolist(),
        "bias": None if b is None else b.tolist(),
        "sample_weight": None if sw is None else sw.tolist(),
        "grad_output": None if grad_output is None else go.tolist(),
        "loss": np.atleast_1d(np.asarray(out)).tolist(),
        "de": np.asarray(de).ravel().tolist(),
        "dc": np.asarray(dc).ravel().tolist(),
        "dbias": None if b is None else np.asarray(db).tolist(),
        "lse": np.asarray(lse).tolist(),
    }


def main():
    rng = np.random.default_rng(20240917)
    cases = [
        case(rng, "mean_plain", 7, 5, 11, "mean", n_ignored=2),
        case(rng, "sum_bias", 6, 4, 9, "sum", bias=True, n_ignored=1, tiles=(2, 4)),
        case(rng, "none_grad_output", 5, 3, 13, "none", bias=True, grad_output="random",
             tiles=(3, 5)),
        case(rng, "mean_softcap", 8, 6, 10, "mean", cap=2.5, bias=True, n_ignored=2, scale=1.5),
        case(rng, "mean_z_loss", 6, 5, 12, "mean", lam=0.05, n_ignored=1, tiles=(4, 3)),
        case(rng, "mean_sample_weight", 9, 4, 8, "mean", sample=True, bias=True, n_ignored=3,
             grad_output=0.7),
        case(rng, "mean_normalizer", 6, 3, 7, "mean", normalizer=11.0, n_ignored=1),
        case(rng, "custom_ignore_index", 7, 4, 9, "sum", ignore=3, n_ignored=0, bias=True),
        case(rng, "everything", 10, 5, 17, "mean", cap=4.0, lam=0.01, bias=True, sample=True,
             n_ignored=3, scale=1.3, tiles=(3, 4)),
        case(rng, "none_everything", 6, 2, 5, "none", cap=1.5, lam=0.1, bias=True, sample=True,
             n_ignored=2, grad_output="random", tiles=(1, 2)),
        case(rng, "d_one", 5, 1, 6, "mean", bias=True),
        case(rng, "n_one", 1, 7, 19, "sum", cap=3.0, tiles=(1, 6)),
    ]
    dump(document("cut_cross_entropy", "tests/golden/gen/lm.py",
                  {"jax": jax.__version__, "numpy": np.__version__},
                  [v1_cut_cross_entropy(c) for c in cases]))


if __name__ == "__main__":
    main()
