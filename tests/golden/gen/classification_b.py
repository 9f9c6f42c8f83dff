"""Golden values for part of the classification family of losskit.

Losses: dco, categorical_value, reward_shaped_ntp, ca_calibration, harmonic, amp_entropy.

Each loss is written here again, independently of the Rust code, from its formulas in JAX
with float64, and gradients come from jax.grad (never from the closed forms the Rust code
uses). Inputs are drawn as float32 values so that the Rust side reads exactly the same
numbers. Output: tests/golden/classification/<id>.json.

Run with jax 0.10.2 and numpy 2.4.6 (CPU), from the repository root:
    python tests/golden/gen/classification_b.py
This script installs nothing and is not run by CI.

JSON layout of one file:
    {"id": ..., "cases": [{"name", "params": {name: value}, "inputs": {name: {"shape",
     "data"}}, "batch_level": bool,
     per-sample losses: "loss_none" [N], "loss_sum", "loss_mean",
                        "grad_sum" {input: [...]}, "grad_mean" {input: [...]}
     batch-level losses: "loss", "grad" {input: [...]}}]}
"""

import json
import os

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "classification")


def f32(a):
    """Round to float32 and come back as float64 (the exact values Rust will read)."""
    return np.asarray(np.asarray(a, dtype=np.float32), dtype=np.float64)


def tensor(a, kind):
    a = np.asarray(a)
    if kind == "f32":
        data = [float(np.float32(v)) for v in a.ravel()]
    else:
        data = [int(v) for v in a.ravel()]
    return {"shape": list(a.shape), "dtype": kind, "data": data}


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def per_sample_case(name, params, inputs, kinds, diff, rows_fn, den_fn):
    """rows_fn(values: dict) -> [N] losses; diff: names of differentiable inputs."""
    vals = {k: jnp.asarray(v) for k, v in inputs.items()}

    def total(*dv):
        v = dict(vals)
        v.update(dict(zip(diff, dv)))
        return jnp.sum(rows_fn(v))

    rows = np.asarray(rows_fn(vals))
    den = float(den_fn(vals))
    grads = jax.grad(total, argnums=tuple(range(len(diff))))(*[vals[k] for k in diff])
    gs = {k: flat(g) for k, g in zip(diff, grads)}
    gm = {k: flat(np.asarray(g) / den if den > 0 else np.zeros_like(g)) for k, g in zip(diff, grads)}
    return {
        "name": name,
        "params": params,
        "inputs": {k: tensor(v, kinds[k]) for k, v in inputs.items()},
        "batch_level": False,
        "loss_none": flat(rows),
        "loss_sum": float(rows.sum()),
        "loss_mean": float(rows.sum() / den) if den > 0 else 0.0,
        "grad_sum": gs,
        "grad_mean": gm,
    }


def batch_case(name, params, inputs, kinds, diff, scalar_fn):
    vals = {k: jnp.asarray(v) for k, v in inputs.items()}

    def total(*dv):
        v = dict(vals)
        v.update(dict(zip(diff, dv)))
        return scalar_fn(v)

    loss = float(scalar_fn(vals))
    grads = jax.grad(total, argnums=tuple(range(len(diff))))(*[vals[k] for k in diff])
    return {
        "name": name,
        "params": params,
        "inputs": {k: tensor(v, kinds[k]) for k, v in inputs.items()},
        "batch_level": True,
        "loss": loss,
        "grad": {k: flat(g) for k, g in zip(diff, grads)},
    }


def write(loss_id, cases):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, loss_id + ".json"), "w") as f:
        json.dump({"id": loss_id, "generator": "tests/golden/gen/classification_b.py",
                   "cases": cases}, f, indent=None, separators=(",", ":"))
        f.write("\n")


def logsumexp(z, axis=-1):
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return jnp.squeeze(m, axis) + jnp.log(jnp.sum(jnp.exp(z - m), axis=axis))


# ---------------------------------------------------------------------------------------
# dco: l = -log(1 - (1 - p)^N) = -log(-expm1(N * log1p(-p))), p = exp(logp).
def gen_dco(rng):
    cases = []
    logp = f32(np.concatenate([-(0.02 + 4.0 * rng.random(10)), [-1e-3, -25.0, -0.7]]))
    for n_pass in [1.0, 4.0, 2.5, 64.0]:
        def rows(v, n_pass=n_pass):
            p = jnp.exp(v["logp"])
            return -jnp.log(-jnp.expm1(n_pass * jnp.log1p(-p)))
        cases.append(per_sample_case(f"n_pass={n_pass}", {"n_pass": n_pass}, {"logp": logp},
                                     {"logp": "f32"}, ["logp"], rows,
                                     lambda v: v["logp"].shape[0]))
    write("dco", cases)


GENERATORS = {"dco": gen_dco}

if __name__ == "__main__":
    import sys
    only = sys.argv[1:] or list(GENERATORS)
    for i, k in enumerate(GENERATORS):
        if k in only:
            GENERATORS[k](np.random.default_rng(1000 + i))
            print("wrote", k)
