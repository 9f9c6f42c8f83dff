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

from golden_schema import document, dump, v1_reductions  # noqa: E402

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
    dump(document(loss_id, "tests/golden/gen/classification_b.py",
                  {"jax": jax.__version__, "numpy": np.__version__},
                  [v1_reductions(c) for c in cases]),
         os.path.join(OUT, loss_id + ".json"))


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


# ---------------------------------------------------------------------------------------
# categorical_value: l = LSE(z) - sum_j q_j z_j with q from HL-Gauss or two-hot.
def cv_probs(y, kind, v_min, v_max, sigma_ratio, m):
    zeta = (v_max - v_min) / m
    if kind == "hl_gauss":
        y = jnp.clip(y, v_min, v_max)
        edges = jnp.concatenate([v_min + zeta * jnp.arange(m), jnp.array([v_max])])
        sigma = sigma_ratio * zeta
        cdf = jax.scipy.special.erf((edges[None, :] - y[:, None]) / (jnp.sqrt(2.0) * sigma))
        mass = cdf[:, 1:] - cdf[:, :-1]
        return mass / (cdf[:, -1:] - cdf[:, :1])
    centres = v_min + (jnp.arange(m) + 0.5) * zeta
    y = jnp.clip(y, centres[0], centres[-1])
    s = (y - centres[0]) / zeta
    j = jnp.minimum(jnp.floor(s), m - 2).astype(jnp.int32)
    f = s - j
    q = jnp.zeros((y.shape[0], m))
    q = q.at[jnp.arange(y.shape[0]), j].add(1.0 - f)
    return q.at[jnp.arange(y.shape[0]), j + 1].add(f)


def gen_categorical_value(rng):
    cases = []
    settings = [
        ("hl_gauss defaults", {}, 9, [-15.0, 12.0, 0.0, 9.9]),
        ("two_hot defaults", {"kind": "two_hot"}, 9, [-15.0, 12.0, 0.0, 9.4]),
        ("hl_gauss narrow sigma", {"sigma_ratio": 0.3}, 7, [0.3, -4.0]),
        ("hl_gauss wide sigma", {"sigma_ratio": 2.5, "v_min": -1.0, "v_max": 3.0}, 11, [3.0]),
        ("two_hot unit support", {"kind": "two_hot", "v_min": 0.0, "v_max": 1.0}, 5, [0.0, 1.0, 0.55]),
        ("hl_gauss one bin", {"v_min": -2.0, "v_max": 2.0}, 1, [0.5]),
        ("two_hot two bins", {"kind": "two_hot", "v_min": -2.0, "v_max": 2.0}, 2, [0.5, -3.0]),
    ]
    for name, params, m, extra in settings:
        n = 6
        logits = f32(1.5 * rng.standard_normal((n, m)))
        v_min = params.get("v_min", -10.0)
        v_max = params.get("v_max", 10.0)
        t = v_min + (v_max - v_min) * rng.random(n)
        t[: len(extra)] = extra
        target = f32(t)
        kind = params.get("kind", "hl_gauss")
        sr = params.get("sigma_ratio", 0.75)

        def rows(v, kind=kind, v_min=v_min, v_max=v_max, sr=sr, m=m):
            q = cv_probs(v["target"], kind, v_min, v_max, sr, m)
            return logsumexp(v["logits"]) - jnp.sum(q * v["logits"], axis=-1)

        cases.append(per_sample_case(name, params, {"logits": logits, "target": target},
                                     {"logits": "f32", "target": "f32"}, ["logits"], rows,
                                     lambda v: v["logits"].shape[0]))
    write("categorical_value", cases)


# ---------------------------------------------------------------------------------------
# reward_shaped_ntp: l = -sum_a sg(c_a) log pi_a.
def rsntp_rows(v, beta, lam_top, lam_tail, k, ignore_index=-100):
    z = v["logits"]
    y = v["target"]
    n, c = z.shape
    valid = y != ignore_index
    ys = jnp.where(valid, y, 0)
    logp = z - logsumexp(z)[:, None]
    pi = jnp.exp(logp)
    pi_y = pi[jnp.arange(n), ys]
    w_pos = pi_y ** (1.0 - (1.0 - pi_y) ** beta)
    # rank of each class: stable sort of -z puts ties in index order
    order = jnp.argsort(-jax.lax.stop_gradient(z), axis=1, stable=True)
    ranks = jnp.argsort(order, axis=1, stable=True)
    in_top = ranks < k
    lam = jnp.where(in_top, lam_top, lam_tail)
    onehot = jax.nn.one_hot(ys, c)
    coef = jnp.where(onehot > 0, w_pos[:, None], pi * lam)
    coef = jax.lax.stop_gradient(coef)
    return jnp.where(valid, -jnp.sum(coef * logp, axis=1), 0.0)


def gen_reward_shaped_ntp(rng):
    cases = []
    settings = [
        ("defaults (cross-entropy)", {}),
        ("beta=-0.25", {"beta": -0.25}),
        ("beta=0.5", {"beta": 0.5}),
        ("tail penalty", {"lambda_tail": -0.1, "top_k": 3}),
        ("top reward", {"lambda_top": 0.1, "top_k": 3}),
        ("all knobs", {"beta": 0.5, "lambda_top": 0.2, "lambda_tail": -0.05, "top_k": 2}),
        ("equal lambdas", {"lambda_top": 0.3, "lambda_tail": 0.3, "top_k": 2}),
        ("k >= C", {"lambda_top": 0.2, "lambda_tail": -0.4, "top_k": 7}),
        ("k = 1", {"beta": -0.5, "lambda_top": 0.5, "lambda_tail": -0.2, "top_k": 1}),
    ]
    for name, params in settings:
        n, c = 8, 7
        logits = 1.5 * rng.standard_normal((n, c))
        logits[1, 2] = logits[1, 4] = logits[1, 5]  # ties
        logits[2, :] = 0.25  # all tied
        logits[3, 0] += 8.0  # confident row
        logits = f32(logits)
        target = rng.integers(0, c, n)
        target[5] = -100
        target[3] = 0
        p = dict(beta=params.get("beta", 0.0), lam_top=params.get("lambda_top", 0.0),
                 lam_tail=params.get("lambda_tail", 0.0), k=params.get("top_k", 100))

        def rows(v, p=p):
            return rsntp_rows(v, **p)

        cases.append(per_sample_case(name, params, {"logits": logits, "target": target},
                                     {"logits": "f32", "target": "i64"}, ["logits"], rows,
                                     lambda v: int(np.sum(np.asarray(v["target"]) != -100))))
    write("reward_shaped_ntp", cases)


# ---------------------------------------------------------------------------------------
# ca_calibration (batch-level): balanced squared error between max-softmax confidence and
# the correctness of ref_pred (default: argmax of the logits).
def ca_scalar(v, pred, balance, ignore_index=-100):
    """pred: ref_pred, or the argmax of the (untraced) logits when ref_pred is absent."""
    z = v["logits"]
    y = v["target"]
    valid = np.asarray(y) != ignore_index
    if not valid.any():
        return jnp.sum(z) * 0.0
    correct = (pred == np.asarray(y)) & valid
    acc = correct[valid].mean()
    if balance and 0.0 < acc < 1.0:
        w = np.where(correct, 1.0 - acc, acc)
    else:
        w = np.ones(len(y))
    w = np.where(valid, w, 0.0)
    conf = jnp.max(jax.nn.softmax(z, axis=1), axis=1)
    return jnp.sum(w * (conf - correct.astype(np.float64)) ** 2) / w.sum()


def gen_ca_calibration(rng):
    cases = []
    n, c = 10, 5
    for name, params, with_ref, kind in [
        ("balanced", {}, False, "mixed"),
        ("unbalanced", {"balance": False}, False, "mixed"),
        ("balanced with ref_pred", {}, True, "mixed"),
        ("unbalanced with ref_pred", {"balance": False}, True, "mixed"),
        ("all correct falls back to uniform weights", {}, False, "all_correct"),
        ("all wrong falls back to uniform weights", {}, True, "all_wrong"),
        ("ignore_index 3", {"ignore_index": 3}, False, "mixed"),
    ]:
        logits = f32(2.0 * rng.standard_normal((n, c)))
        am = np.argmax(logits, axis=1)
        target = rng.integers(0, c, n)
        target[:4] = am[:4]  # some correct rows
        if kind == "all_correct":
            target = am.copy()
        ref = rng.integers(0, c, n)
        ref[:5] = target[:5]
        if kind == "all_wrong":
            ref = (target + 1) % c
        ig = params.get("ignore_index", -100)
        if ig == -100:
            target[7] = -100
        inputs = {"logits": logits, "target": target}
        kinds = {"logits": "f32", "target": "i64"}
        if with_ref:
            inputs["ref_pred"] = ref
            kinds["ref_pred"] = "i64"
        bal = params.get("balance", True)
        pred = ref if with_ref else am
        cases.append(batch_case(name, params, inputs, kinds, ["logits"],
                                lambda v, p=pred, bal=bal, ig=ig: ca_scalar(v, p, bal, ig)))
    write("ca_calibration", cases)


# ---------------------------------------------------------------------------------------
# harmonic: l_i = LSE_c(-n log d_ic) + n log d_iy over the [N, C, D] broadcast distances.
def harmonic_dist(x, w, prec, metric, eps, p, temp):
    dlt = x[:, None, :] - w[None, :, :]
    if metric == "euclidean":
        sq = jnp.sum(x * x, 1)[:, None] + jnp.sum(w * w, 1)[None, :] - 2.0 * x @ w.T
        return jnp.maximum(sq, 0.0) + eps
    if metric == "manhattan":
        return jnp.sum(jnp.abs(dlt), -1) + eps
    if metric == "minkowski":
        return jnp.sum(jnp.abs(dlt) ** p, -1) ** (1.0 / p) + eps
    if metric == "chebyshev":
        return jnp.max(jnp.abs(dlt), -1) + eps
    if metric == "cosine":
        xh = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        wh = w / jnp.maximum(jnp.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        return 1.0 - xh @ wh.T + eps
    if metric == "bray_curtis":
        num = jnp.sum(jnp.abs(dlt), -1)
        den = jnp.sum(jnp.abs(x[:, None, :] + w[None, :, :]), -1) + eps
        return num / den + eps
    if metric == "canberra":
        m = jnp.maximum(jnp.abs(x)[:, None, :] + jnp.abs(w)[None, :, :], eps)
        return jnp.sum(jnp.abs(dlt) / m, -1) + eps
    if metric == "hamming":
        sx = jax.nn.sigmoid(x / temp)
        sw = jax.nn.sigmoid(w / temp)
        return jnp.sum(jnp.abs(sx[:, None, :] - sw[None, :, :]), -1) + eps
    if metric == "mahalanobis":
        q = jnp.einsum("ncd,de,nce->nc", dlt, prec, dlt)
        return jnp.sqrt(jnp.maximum(q, 0.0) + eps)
    raise ValueError(metric)


def harmonic_rows(v, metric, n_exp, eps, p, temp, ignore_index=-100):
    d = v["x"].shape[1]
    prec = v["precision"] if "precision" in v else jnp.eye(d)
    dist = harmonic_dist(v["x"], v["centers"], prec, metric, eps, p, temp)
    logits = -n_exp * jnp.log(dist)
    y = v["target"]
    valid = y != ignore_index
    ys = jnp.where(valid, y, 0)
    rows = logsumexp(logits) - logits[jnp.arange(len(ys)), ys]
    return jnp.where(valid, rows, 0.0)


def gen_harmonic(rng):
    cases = []
    settings = [
        ("euclidean", {}),
        ("euclidean n=2.5 eps=0.05", {"n": 2.5, "eps": 0.05}),
        ("manhattan", {"metric": "manhattan"}),
        ("minkowski", {"metric": "minkowski"}),
        ("minkowski p=3", {"metric": "minkowski", "p": 3.0}),
        ("minkowski p=1", {"metric": "minkowski", "p": 1.0}),
        ("chebyshev", {"metric": "chebyshev"}),
        ("cosine", {"metric": "cosine"}),
        ("bray_curtis", {"metric": "bray_curtis"}),
        ("canberra", {"metric": "canberra"}),
        ("canberra below eps", {"metric": "canberra", "eps": 0.05}),
        ("hamming", {"metric": "hamming"}),
        ("hamming T=0.5", {"metric": "hamming", "hamming_temperature": 0.5}),
        ("mahalanobis identity", {"metric": "mahalanobis"}),
        ("mahalanobis precision", {"metric": "mahalanobis", "n": 2.0}),
        ("mahalanobis indefinite", {"metric": "mahalanobis"}),
    ]
    for name, params in settings:
        n, c, d = 6, 5, 4
        x = 1.2 * rng.standard_normal((n, d))
        w = 1.2 * rng.standard_normal((c, d))
        if name == "canberra below eps":
            x[0, :2] = [0.01, -0.02]
            w[1, :2] = [0.015, 0.012]
            w[3, 1] = -0.005
        x, w = f32(x), f32(w)
        target = rng.integers(0, c, n)
        target[4] = -100
        inputs = {"x": x, "centers": w, "target": target}
        kinds = {"x": "f32", "centers": "f32", "target": "i64"}
        diff = ["x", "centers"]
        if name == "mahalanobis precision":
            b = rng.standard_normal((d, d))
            a = rng.standard_normal((d, d))
            inputs["precision"] = f32(b @ b.T / d + 0.5 * np.eye(d) + 0.2 * (a - a.T))
        if name == "mahalanobis indefinite":
            inputs["precision"] = f32(np.diag([1.0, -0.6, 0.8, -0.9]) + 0.05 * rng.standard_normal((d, d)))
        if "precision" in inputs:
            kinds["precision"] = "f32"
            diff.append("precision")
        cfg = dict(metric=params.get("metric", "euclidean"), n_exp=params.get("n", 1.0),
                   eps=params.get("eps", 1e-4), p=params.get("p", 1.5),
                   temp=params.get("hamming_temperature", 1.0))

        def rows(v, cfg=cfg):
            return harmonic_rows(v, **cfg)

        cases.append(per_sample_case(name, params, inputs, kinds, diff, rows,
                                     lambda v: int(np.sum(np.asarray(v["target"]) != -100))))
    write("harmonic", cases)


# ---------------------------------------------------------------------------------------
# amp_entropy (batch-level): mean entropy of row-softmax(temp_inv * Xh Xh^T).
def amp_scalar(v, temp_inv, normalize):
    x = v["features"]
    if normalize:
        x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = temp_inv * x @ x.T
    logp = jax.nn.log_softmax(s, axis=1)
    return -jnp.mean(jnp.sum(jnp.exp(logp) * logp, axis=1))


def gen_amp_entropy(rng):
    cases = []
    for name, params, n, d in [
        ("defaults", {}, 7, 5),
        ("temp_inv=15", {"temp_inv": 15.0}, 9, 6),
        ("unnormalised", {"normalize": False, "temp_inv": 0.5}, 6, 4),
        ("one row", {}, 1, 3),
        ("wide", {"temp_inv": 3.0}, 5, 40),
    ]:
        x = f32(rng.standard_normal((n, d)))
        t = params.get("temp_inv", 20.0)
        nz = params.get("normalize", True)
        cases.append(batch_case(name, params, {"features": x}, {"features": "f32"},
                                ["features"], lambda v, t=t, nz=nz: amp_scalar(v, t, nz)))
    write("amp_entropy", cases)


GENERATORS = {"dco": gen_dco, "categorical_value": gen_categorical_value,
              "reward_shaped_ntp": gen_reward_shaped_ntp,
              "ca_calibration": gen_ca_calibration,
              "harmonic": gen_harmonic,
              "amp_entropy": gen_amp_entropy}

if __name__ == "__main__":
    import sys
    only = sys.argv[1:] or list(GENERATORS)
    for i, k in enumerate(GENERATORS):
        if k in only:
            GENERATORS[k](np.random.default_rng(1000 + i))
            print("wrote", k)
