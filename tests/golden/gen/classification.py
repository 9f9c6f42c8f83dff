"""Golden values for the classification losses of losskit (tests/golden/classification/*.json).

An independent float64 implementation in JAX, written from the forward formulas of the
specification (the paper's own form where the spec gives one, e.g. comp-sum's Phi^tau of
sum_{c != y} exp(z_c - z_y)); every gradient comes from JAX's automatic differentiation of the
forward, never from the closed forms the library uses.

Run with jax 0.10.2 and numpy 2.4.6 (float64 enabled below):
    python tests/golden/gen/classification.py [id ...]
Not run by CI; its output is checked in.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from golden_schema import document, dump, v1_reductions

jax.config.update("jax_enable_x64", True)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "classification")
IGNORE = -100


def f32(a):
    """Round to float32 (the library's input type), then compute in float64."""
    return np.asarray(np.asarray(a, dtype=np.float32), dtype=np.float64)


def logits(rng, n, c, scale=1.5):
    return f32(scale * rng.standard_normal((n, c)))


def targets(rng, n, c, ignore_rows=(1,)):
    y = rng.integers(0, c, size=n).astype(np.int64)
    for i in ignore_rows:
        if i < n:
            y[i] = IGNORE
    return y


def safe_target(y):
    mask = y != IGNORE
    return jnp.where(mask, y, 0), mask


def pick(m, y):
    return jnp.take_along_axis(m, y[:, None], axis=1)[:, 0]


# ---------------------------------------------------------------- per-loss forward (rows)
# Each returns (per-row loss [N] with ignored rows 0, mean denominator, aux dict).


def focal(x, p):
    z = x["logits"]
    y, mask = safe_target(x["target"])
    w = x.get("class_weights")
    alpha = pick(jnp.broadcast_to(w, z.shape), y) if w is not None else jnp.ones(z.shape[0])
    u = pick(jax.nn.log_softmax(z), y)
    pt = jnp.exp(u)
    loss = -alpha * (1.0 - pt) ** p["gamma"] * u
    return jnp.where(mask, loss, 0.0), jnp.sum(jnp.where(mask, alpha, 0.0)), {}


def poly1(x, p):
    z = x["logits"]
    y, mask = safe_target(x["target"])
    logp = jax.nn.log_softmax(z)
    u = pick(logp, y)
    loss = -u + p["epsilon"] * (1.0 - jnp.exp(u))
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {}


def comp_tau(p):
    return {"logistic": 1.0, "sum_exp": 0.0, "gce": 1.0 + p["q"], "mae": 2.0, "general": p["tau"]}[
        p["kind"]
    ]


def comp_sum_rows(z, y, p):
    """The paper's form: Phi^tau(sum_{c != y} exp(z_c - z_y))."""
    tau = comp_tau(p)
    zy = pick(z, y)
    c = z.shape[1]
    other = jnp.arange(c)[None, :] != y[:, None]
    u = jnp.sum(jnp.where(other, jnp.exp(z - zy[:, None]), 0.0), axis=1)
    if tau == 1.0:
        return jnp.log1p(u)
    return ((1.0 + u) ** (1.0 - tau) - 1.0) / (1.0 - tau)


def comp_sum(x, p):
    y, mask = safe_target(x["target"])
    loss = comp_sum_rows(x["logits"], y, p)
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {}


def smooth_adv_comp_sum(x, p):
    z, a = x["logits"], x["adv_logits"]
    y, mask = safe_target(x["target"])
    d = a - z
    r = pick(d, y)[:, None] - d
    reg = jnp.sqrt(jnp.sum(r * r, axis=1))
    loss = comp_sum_rows(z, y, p) + p["nu"] * reg
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {}


def ldr_normalise(f, how):
    if how == "none":
        return f
    if how == "softplus_mean":
        s = jax.nn.softplus(f)
        return s / jnp.mean(s, axis=1, keepdims=True)
    if how == "l1_mean":
        m = jnp.maximum(jnp.mean(jnp.abs(f), axis=1, keepdims=True), 1e-12)
        return f / m
    raise ValueError(how)


def ldr_margins(f, y, p):
    g = ldr_normalise(f, p["normalize"])
    c = f.shape[1]
    other = (jnp.arange(c)[None, :] != y[:, None]).astype(f.dtype)
    return g - pick(g, y)[:, None] + p["margin"] * other


def ldr_kl(x, p):
    f = x["logits"]
    y, mask = safe_target(x["target"])
    a = ldr_margins(f, y, p)
    c = f.shape[1]
    lam = p["lam"]
    loss = lam * (jax.scipy.special.logsumexp(a / lam, axis=1) - jnp.log(c))
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {}


def aldr_kl(x, p):
    f = x["logits"]
    y, mask = safe_target(x["target"])
    n, c = f.shape
    lam0, alpha = p["lam0"], p["alpha"]
    prev = x.get("lambda_prev")
    if prev is None:
        prev = jnp.full(n, lam0)
    a = ldr_margins(f, y, p)
    logc = jnp.log(c)
    lq = jax.nn.log_softmax(jax.lax.stop_gradient(a) / prev[:, None], axis=1)
    kl = logc + jnp.sum(jnp.exp(lq) * lq, axis=1)
    lam = jax.lax.stop_gradient(lam0 - lam0 * kl / (alpha * logc))
    loss = lam * (jax.scipy.special.logsumexp(a / lam[:, None], axis=1) - logc) - (
        alpha * logc / (2.0 * lam0)
    ) * (lam - lam0) ** 2
    lam_out = jnp.where(mask, lam, prev)
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {"lambda_out": lam_out}


def spherical_z_loss(x, p):
    o = x["logits"]
    y, mask = safe_target(x["target"])
    mu = jnp.mean(o, axis=1)
    sigma = jnp.sqrt(jnp.mean((o - mu[:, None]) ** 2, axis=1))
    zy = (pick(o, y) - mu) / (sigma + 1e-12)
    a, b = p["a"], p["b"]
    loss = jax.nn.softplus(a * (b - zy)) / a
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {}


def symmetric_ce(x, p):
    s, t = x["student_logits"], x["teacher_logits"]
    lp, lq = jax.nn.log_softmax(s, axis=1), jax.nn.log_softmax(t, axis=1)
    al = p["alpha"]
    loss = -(1 - al) * jnp.sum(jnp.exp(lq) * lp, axis=1) - al * jnp.sum(jnp.exp(lp) * lq, axis=1)
    return loss, s.shape[0], {}


def noisefit_hybrid(x, p):
    z, n1, n2 = x["logits"], x["noisy_logits_1"], x["noisy_logits_2"]
    y, mask = safe_target(x["target"])
    al, lc, temp = p["alpha"], p["lambda_consistency"], p["temperature"]
    ce = -pick(jax.nn.log_softmax(z, axis=1), y)
    lt = jax.nn.log_softmax(z / temp, axis=1)
    if p["detach_targets"]:
        lt = jax.lax.stop_gradient(lt)
    t = jnp.exp(lt)
    l1, l2 = jax.nn.log_softmax(n1, axis=1), jax.nn.log_softmax(n2, axis=1)
    soft = 0.5 * (jnp.sum(t * (lt - l1), axis=1) + jnp.sum(t * (lt - l2), axis=1))
    cons = jnp.sum(jnp.exp(l2) * (l2 - l1), axis=1)
    loss = al * ce + (1 - al) * soft + lc * cons
    return jnp.where(mask, loss, 0.0), jnp.sum(mask), {}


def kd_kl(x, p):
    s, t = x["student_logits"], x["teacher_logits"]
    temp = p["temperature"]
    lq = jax.nn.log_softmax(t / temp, axis=1)
    lp = jax.nn.log_softmax(s / temp, axis=1)
    loss = temp**2 * jnp.sum(jnp.exp(lq) * (lq - lp), axis=1)
    return loss, s.shape[0], {}


# ---------------------------------------------------------------- cases


def cases_focal(rng):
    out = []
    for i, (gamma, weighted) in enumerate([(2.0, False), (0.0, True), (0.5, True), (5.0, False)]):
        n, c = 6, 5
        x = {"logits": logits(rng, n, c), "target": targets(rng, n, c)}
        if weighted:
            x["class_weights"] = f32(0.2 + 1.5 * rng.random(c))
        out.append((f"gamma{gamma}" + ("_weighted" if weighted else ""), {"gamma": gamma}, x))
    return out


def cases_poly1(rng):
    return [
        (f"eps{e}", {"epsilon": e}, {"logits": logits(rng, 6, 5), "target": targets(rng, 6, 5)})
        for e in [1.0, 0.0, -1.0, 3.5]
    ]


COMP_KINDS = [
    {"kind": "logistic"},
    {"kind": "sum_exp"},
    {"kind": "gce", "q": 0.7},
    {"kind": "gce", "q": 0.2},
    {"kind": "mae"},
    {"kind": "general", "tau": 0.5},
    {"kind": "general", "tau": 1.0},
    {"kind": "general", "tau": 3.0},
]


def full_comp(pk):
    p = {"q": 0.7, "tau": 1.5}
    p.update(pk)
    return p


def cases_comp_sum(rng):
    return [
        ("_".join(f"{k}{v}" for k, v in pk.items()), full_comp(pk),
         {"logits": logits(rng, 6, 5), "target": targets(rng, 6, 5)})
        for pk in COMP_KINDS
    ]


def cases_smooth_adv(rng):
    out = []
    for pk, nu in [({"kind": "logistic"}, 1.0), ({"kind": "gce", "q": 0.5}, 0.3),
                   ({"kind": "sum_exp"}, 2.0), ({"kind": "general", "tau": 0.5}, 0.0)]:
        z = logits(rng, 6, 5)
        p = full_comp(pk)
        p["nu"] = nu
        out.append((f"{pk['kind']}_nu{nu}", p,
                    {"logits": z, "adv_logits": f32(z + 0.3 * rng.standard_normal(z.shape)),
                     "target": targets(rng, 6, 5)}))
    return out


def cases_ldr_kl(rng):
    out = []
    for lam, margin, norm in [(10.0, 0.1, "softplus_mean"), (1.0, 0.0, "none"),
                              (0.5, 0.3, "l1_mean"), (2.0, 0.1, "none"), (1.0, 0.5, "softplus_mean")]:
        out.append((f"{norm}_lam{lam}_m{margin}", {"lam": lam, "margin": margin, "normalize": norm},
                    {"logits": logits(rng, 6, 5), "target": targets(rng, 6, 5)}))
    return out


def cases_aldr_kl(rng):
    out = []
    for lam0, alpha, margin, norm, prev in [(10.0, 2.0, 0.1, "l1_mean", False),
                                            (1.0, 2.0, 0.1, "l1_mean", True),
                                            (2.0, 1.5, 0.0, "none", True),
                                            (0.5, 3.0, 0.2, "softplus_mean", False)]:
        x = {"logits": logits(rng, 6, 5, scale=3.0), "target": targets(rng, 6, 5)}
        if prev:
            x["lambda_prev"] = f32(lam0 * (0.5 + rng.random(6)))
        out.append((f"{norm}_lam0{lam0}_alpha{alpha}" + ("_prev" if prev else ""),
                    {"lam0": lam0, "alpha": alpha, "margin": margin, "normalize": norm}, x))
    return out


def cases_spherical(rng):
    out = []
    for a, b in [(1.0, 0.0), (2.5, 0.7), (0.3, -1.2)]:
        out.append((f"a{a}_b{b}", {"a": a, "b": b},
                    {"logits": logits(rng, 6, 5), "target": targets(rng, 6, 5)}))
    return out


def cases_symmetric(rng):
    return [(f"alpha{al}", {"alpha": al},
             {"student_logits": logits(rng, 5, 6), "teacher_logits": logits(rng, 5, 6)})
            for al in [0.5, 0.0, 1.0, 0.2]]


def cases_noisefit(rng):
    out = []
    for al, lc, temp, det in [(0.5, 0.1, 1.0, False), (0.3, 0.5, 2.0, False),
                              (0.7, 0.0, 0.5, True), (0.0, 1.0, 1.5, False), (1.0, 0.2, 1.0, True)]:
        z = logits(rng, 6, 5)
        out.append((f"a{al}_l{lc}_T{temp}_d{det}",
                    {"alpha": al, "lambda_consistency": lc, "temperature": temp,
                     "detach_targets": det},
                    {"logits": z, "noisy_logits_1": f32(z + 0.5 * rng.standard_normal(z.shape)),
                     "noisy_logits_2": f32(z + 0.5 * rng.standard_normal(z.shape)),
                     "target": targets(rng, 6, 5)}))
    return out


def cases_kd(rng):
    return [(f"T{t}", {"temperature": t},
             {"student_logits": logits(rng, 5, 6), "teacher_logits": logits(rng, 5, 6)})
            for t in [1.0, 4.0, 0.5]]


# id -> (forward, differentiable inputs, cases, input order)
LOSSES = {
    "focal": (focal, ["logits"], cases_focal),
    "poly1": (poly1, ["logits"], cases_poly1),
    "comp_sum": (comp_sum, ["logits"], cases_comp_sum),
    "smooth_adv_comp_sum": (smooth_adv_comp_sum, ["logits", "adv_logits"], cases_smooth_adv),
    "ldr_kl": (ldr_kl, ["logits"], cases_ldr_kl),
    "aldr_kl": (aldr_kl, ["logits"], cases_aldr_kl),
    "spherical_z_loss": (spherical_z_loss, ["logits"], cases_spherical),
    "symmetric_ce": (symmetric_ce, ["student_logits", "teacher_logits"], cases_symmetric),
    "noisefit_hybrid": (noisefit_hybrid, ["logits", "noisy_logits_1", "noisy_logits_2"],
                        cases_noisefit),
    "kd_kl": (kd_kl, ["student_logits"], cases_kd),
}


def tolist(a):
    return np.asarray(a).tolist()


def make(id_):
    fwd, diff, cases = LOSSES[id_]
    rng = np.random.default_rng(sum(map(ord, id_)))
    out_cases = []
    for name, params, x in cases(rng):
        xj = {k: jnp.asarray(v) for k, v in x.items()}
        rows, den, aux = fwd(xj, params)
        den = float(den)

        def reduced(dv, how):
            xx = dict(xj)
            xx.update(dv)
            r, d, _ = fwd(xx, params)
            s = jnp.sum(r)
            return s if how == "sum" else jnp.where(d > 0, s / d, 0.0)

        dv0 = {k: xj[k] for k in diff}
        g_sum = jax.grad(lambda dv: reduced(dv, "sum"))(dv0)
        g_mean = jax.grad(lambda dv: reduced(dv, "mean"))(dv0)
        out_cases.append({
            "name": name,
            "params": params,
            "inputs": {k: {"shape": list(np.shape(v)), "data": tolist(np.ravel(v))}
                       for k, v in x.items()},
            "loss_none": tolist(rows),
            "loss_sum": float(jnp.sum(rows)),
            "loss_mean": float(jnp.sum(rows) / den) if den > 0 else 0.0,
            "grad_sum": {k: tolist(np.ravel(g_sum[k])) for k in diff},
            "grad_mean": {k: tolist(np.ravel(g_mean[k])) for k in diff},
            "aux": {k: tolist(v) for k, v in aux.items()},
        })
    doc = document(id_, "tests/golden/gen/classification.py",
                   {"jax": jax.__version__, "numpy": np.__version__},
                   [v1_reductions(c) for c in out_cases])
    os.makedirs(OUT, exist_ok=True)
    dump(doc, os.path.join(OUT, f"{id_}.json"))


if __name__ == "__main__":
    for id_ in sys.argv[1:] or list(LOSSES):
        make(id_)
        print("wrote", id_)
