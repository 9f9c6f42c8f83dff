"""Golden values for the preference / RL losses (tests/golden/preference/<id>.json).

An independent float64 implementation in JAX of each formula of the spec, written from the
formulas (full log-softmax, direct expressions); gradients come from jax.grad, not from the
closed forms used by losskit. Run with jax 0.10.2 and numpy 2.4.6:

    python tests/golden/gen/preference.py

It installs nothing and is not run by CI; its JSON output is checked in.

File format: {"id", "generator", "cases": [{"name", "params", "inputs": {name: {"shape",
"data"}}, "loss_none": [...], "grads_sum": {name: [...]}, "aux": {name: [...]}}]}.
`loss_none` is the per-row loss (reduction none); `grads_sum` is the gradient of the
sum-reduced loss; `aux` holds auxiliary outputs.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from golden_schema import document, dump, v1_rows  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "preference")
sp = jax.nn.softplus
sig = jax.nn.sigmoid
logsig = jax.nn.log_sigmoid


def f32(a):
    """Round to f32 first: losskit sees f32 inputs."""
    return np.asarray(np.asarray(a, dtype=np.float32), dtype=np.float64)


def tensor(a, dtype="f32"):
    a = np.asarray(a)
    if dtype == "i64":
        return {"shape": list(a.shape), "dtype": "i64", "data": [int(v) for v in a.ravel()]}
    return {"shape": list(a.shape), "dtype": "f32", "data": [float(v) for v in a.ravel()]}


def case(name, params, inputs, per_row, diff, aux=None, mean_den=None):
    """inputs: name -> (array, dtype); per_row(**arrays) -> [rows]; diff: names to differentiate."""
    arrays = {k: (jnp.asarray(v) if d == "i64" else jnp.asarray(f32(v))) for k, (v, d) in inputs.items()}
    loss = per_row(**arrays)
    grads = {}
    for k in diff:
        if k not in arrays:
            continue

        def tot(x, k=k):
            a = dict(arrays)
            a[k] = x
            return jnp.sum(per_row(**a))

        grads[k] = [float(v) for v in np.asarray(jax.grad(tot)(arrays[k])).ravel()]
    out = {
        "name": name,
        "params": params,
        "inputs": {k: tensor(f32(v) if d == "f32" else v, d) for k, (v, d) in inputs.items()},
        "loss_none": [float(v) for v in np.asarray(loss).ravel()],
        "grads_sum": grads,
    }
    if mean_den is not None:
        out["mean_den"] = mean_den
    if aux:
        out["aux"] = {k: [float(v) for v in np.asarray(f(**arrays)).ravel()] for k, f in aux.items()}
    return out


# The RL losses' files go to tests/golden/rl/; aot is batch-level (its rows are terms).
RL = {"grpo", "ppo_clip", "steer"}
BATCH_LEVEL = {"aot"}


def save(id_, cases):
    out = os.path.join(OUT, "..", "rl") if id_ in RL else OUT
    os.makedirs(out, exist_ok=True)
    dump(document(id_, "tests/golden/gen/preference.py",
                  {"jax": jax.__version__, "numpy": np.__version__},
                  [v1_rows(c, id_ in BATCH_LEVEL) for c in cases]),
         os.path.join(out, id_ + ".json"))


rng = np.random.default_rng(20240606)


def logps(*shape):
    return -rng.uniform(0.05, 3.0, size=shape)


# ---------------------------------------------------------------- token_logprobs
def token_logprobs():
    cases = []
    for name, (n, t, v), tau, average, with_w, with_ref, cots, ig in [
        ("plain", (3, 4, 7), 1.0, False, False, False, (), -100),
        ("average_weights", (2, 5, 9), 1.0, True, True, False, (), -100),
        ("temperature_ref", (2, 3, 6), 0.7, False, False, True, (), -1),
        ("all_cotangents", (3, 3, 5), 1.3, True, True, True, ("grad_token_logps", "grad_entropy", "grad_token_kl"), -100),
        ("entropy_only", (2, 4, 8), 1.0, False, False, False, ("grad_entropy",), -100),
    ]:
        logits = rng.normal(size=(n, t, v)) * 2.0
        labels = rng.integers(0, v, size=(n, t))
        mask = rng.uniform(size=(n, t)) < 0.25
        mask[0, 0] = False
        labels = np.where(mask, ig, labels)
        if n > 2:
            labels[2, :] = ig  # a fully masked row
        inputs = {"logits": (logits, "f32"), "labels": (labels, "i64")}
        if with_w:
            inputs["token_weight"] = (rng.uniform(0.2, 1.5, size=(n, t)), "f32")
        if with_ref:
            inputs["ref_logits"] = (rng.normal(size=(n, t, v)) * 1.5, "f32")
        for cname in cots:
            inputs[cname] = (rng.normal(size=(n, t)), "f32")

        def parts(logits, labels, ref_logits=None, **_):
            m = labels != ig
            y = jnp.where(m, labels, 0)
            lp_all = jax.nn.log_softmax(logits / tau, axis=-1)
            lp = jnp.where(m, jnp.take_along_axis(lp_all, y[..., None], axis=-1)[..., 0], 0.0)
            h = jnp.where(m, -jnp.sum(jnp.exp(lp_all) * lp_all, axis=-1), 0.0)
            coll = jnp.where(m, jax.scipy.special.logsumexp(2 * lp_all, axis=-1), 0.0)
            if ref_logits is not None:
                lq = jax.nn.log_softmax(ref_logits / tau, axis=-1)
                kl = jnp.where(m, jnp.sum(jnp.exp(lq) * (lp_all - lq), axis=-1), 0.0)
            else:
                kl = jnp.zeros_like(lp)
            return m, lp, h, kl, coll

        def per_row(logits, labels, token_weight=None, ref_logits=None, grad_token_logps=None,
                    grad_entropy=None, grad_token_kl=None):
            m, lp, h, kl, _ = parts(logits, labels, ref_logits)
            w = token_weight if token_weight is not None else 1.0
            seq = jnp.sum(w * lp, axis=-1)
            if average:
                seq = seq / jnp.maximum(jnp.sum(m, axis=-1), 1)
            extra = 0.0
            if grad_token_logps is not None:
                extra = extra + jnp.sum(grad_token_logps * lp, axis=-1)
            if grad_entropy is not None:
                extra = extra + jnp.sum(grad_entropy * h, axis=-1)
            if grad_token_kl is not None:
                extra = extra + jnp.sum(grad_token_kl * kl, axis=-1)
            return seq + extra

        aux = {
            "token_logps": lambda **a: parts(a["logits"], a["labels"], a.get("ref_logits"))[1],
            "entropy": lambda **a: parts(a["logits"], a["labels"], a.get("ref_logits"))[2],
            "log_collision": lambda **a: parts(a["logits"], a["labels"], a.get("ref_logits"))[4],
            "token_count": lambda **a: jnp.sum(a["labels"] != ig, axis=-1).astype(jnp.float64),
        }
        if with_ref:
            aux["token_kl"] = lambda **a: parts(a["logits"], a["labels"], a.get("ref_logits"))[3]
        params = {"temperature": tau, "average": average, "ignore_index": ig}
        cases.append(case(name, params, inputs, per_row, ["logits"], aux))
    save("token_logprobs", cases)


# ---------------------------------------------------------------- dpo
def phi(f, alpha, r):
    if f == "reverse_kl":
        return r
    if f == "forward_kl":
        return -jnp.exp(-r)
    if f == "js_divergence":
        return logsig(r)
    return -jnp.exp(jnp.minimum(-alpha * r, 80.0)) / alpha


def dpo_row(lt, beta, eps, f, alpha, tau, delta):
    def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps=None,
                ref_rejected_logps=None, chosen_len=None, rejected_len=None, pair_weight=None):
        rc = ref_chosen_logps if ref_chosen_logps is not None else 0.0
        rr = ref_rejected_logps if ref_rejected_logps is not None else 0.0
        lw = jnp.maximum(chosen_len, 1.0) if chosen_len is not None else 1.0
        ll = jnp.maximum(rejected_len, 1.0) if rejected_len is not None else 1.0
        lrw = policy_chosen_logps - rc
        lrl = policy_rejected_logps - rr
        sw, sl = phi(f, alpha, lrw), phi(f, alpha, lrl)
        x = beta * (sw - sl)
        dn = sw / lw - sl / ll
        if lt == "sigmoid":
            l = (1 - eps) * sp(-x) + eps * sp(x)
        elif lt == "hinge":
            l = jax.nn.relu(1 - x)
        elif lt == "ipo":
            l = (dn - 1 / (2 * beta)) ** 2
        elif lt == "exo_pair":
            l = sig(x) * (logsig(x) - jnp.log1p(-eps)) + sig(-x) * (logsig(-x) - jnp.log(eps))
        elif lt == "nca_pair":
            l = sp(-beta * sw) + 0.5 * sp(beta * sw) + 0.5 * sp(beta * sl)
        elif lt == "robust":
            l = ((1 - eps) * sp(-x) - eps * sp(x)) / (1 - 2 * eps)
        elif lt == "bco_pair":
            l = sp(-(beta * sw - delta)) + sp(beta * sl - delta)
        elif lt == "sppo_hard":
            l = (sw - 1 / (2 * beta)) ** 2 + (sl + 1 / (2 * beta)) ** 2
        elif lt == "apo_zero":
            l = 1 - sig(beta * lrw) + sig(beta * lrl)
        elif lt == "apo_down":
            l = sig(beta * lrw) + 1 - sig(x)
        elif lt == "discopop":
            mu = sig(x / tau)
            l = (1 - mu) * sp(-x) + mu * jnp.exp(-x)
        elif lt == "sigmoid_norm":
            l = sp(-beta * dn)
        w = pair_weight if pair_weight is not None else 1.0
        return w * l

    return per_row


DPO_TYPES = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
             "apo_zero", "apo_down", "discopop", "sigmoid_norm"]


def dpo():
    cases = []
    b = 6
    for lt in DPO_TYPES:
        for variant in ["ref_len_weight", "reference_free"]:
            beta = {"ipo": 0.5, "sppo_hard": 0.5, "discopop": 1.0}.get(lt, 0.3)
            eps = {"sigmoid": 0.1, "exo_pair": 0.2, "robust": 0.15}.get(lt, 0.0)
            tau, delta = (0.3, 0.1)
            params = {"loss_type": lt, "beta": beta, "label_smoothing": eps, "discopop_tau": tau,
                      "bco_delta": delta}
            inputs = {"policy_chosen_logps": (logps(b) * 10, "f32"),
                      "policy_rejected_logps": (logps(b) * 10, "f32")}
            if variant == "ref_len_weight":
                inputs["ref_chosen_logps"] = (logps(b) * 10, "f32")
                inputs["ref_rejected_logps"] = (logps(b) * 10, "f32")
                inputs["chosen_len"] = (rng.integers(0, 12, size=b).astype(float), "f32")
                inputs["rejected_len"] = (rng.integers(0, 12, size=b).astype(float), "f32")
                inputs["pair_weight"] = (rng.uniform(0.1, 1.5, size=b), "f32")
            fn = dpo_row(lt, beta, eps, "reverse_kl", 0.5, tau, delta)
            cases.append(case(f"{lt}_{variant}", params, inputs, fn,
                              ["policy_chosen_logps", "policy_rejected_logps"]))
    for f in ["forward_kl", "js_divergence", "alpha_divergence"]:
        for lt in ["sigmoid", "nca_pair", "apo_down"]:
            alpha = 0.3
            params = {"loss_type": lt, "beta": 0.4, "f_divergence": f, "f_alpha": alpha}
            inputs = {"policy_chosen_logps": (logps(b), "f32"),
                      "policy_rejected_logps": (logps(b), "f32"),
                      "ref_chosen_logps": (logps(b), "f32"),
                      "ref_rejected_logps": (logps(b), "f32")}
            fn = dpo_row(lt, 0.4, 0.0, f, alpha, 0.05, 0.0)
            cases.append(case(f"{lt}_{f}", params, inputs, fn,
                              ["policy_chosen_logps", "policy_rejected_logps"]))
    save("dpo", cases)


# ---------------------------------------------------------------- reference-free and unpaired
def log1mexp(a):
    return jnp.where(a < -jnp.log(2.0), jnp.log1p(-jnp.exp(a)), jnp.log(-jnp.expm1(a)))


def pair_inputs(b, scale=10.0, refs=False, lens=False, lens_opt_chosen_only=False):
    inputs = {"policy_chosen_logps": (logps(b) * scale, "f32"),
              "policy_rejected_logps": (logps(b) * scale, "f32")}
    if refs:
        inputs["ref_chosen_logps"] = (logps(b) * scale, "f32")
        inputs["ref_rejected_logps"] = (logps(b) * scale, "f32")
    if lens:
        inputs["chosen_len"] = (rng.integers(0, 15, size=b).astype(float), "f32")
        if not lens_opt_chosen_only:
            inputs["rejected_len"] = (rng.integers(0, 15, size=b).astype(float), "f32")
    return inputs


PAIR_DIFF = ["policy_chosen_logps", "policy_rejected_logps"]


def orpo():
    cases = []
    for lam in [0.1, 1.0, 0.0]:
        def per_row(policy_chosen_logps, policy_rejected_logps, chosen_len, rejected_len, lam=lam):
            aw = policy_chosen_logps / jnp.maximum(chosen_len, 1.0)
            al = policy_rejected_logps / jnp.maximum(rejected_len, 1.0)
            o = (aw - al) - (log1mexp(aw) - log1mexp(al))
            return -aw + lam * sp(-o)
        cases.append(case(f"lam_{lam}", {"lam": lam}, pair_inputs(6, lens=True), per_row, PAIR_DIFF))
    save("orpo", cases)


def alpha_r(alpha, a):
    return a if alpha == 0 else -jnp.expm1(-alpha * a) / alpha


def margin(hinge, eps, x):
    return jax.nn.relu(1 - x) if hinge else (1 - eps) * sp(-x) + eps * sp(x)


def simpo():
    cases = []
    for name, beta, ratio, eps, lt, alpha, sft in [
        ("default", 2.0, 0.25, 0.0, "sigmoid", 0.0, 0.0),
        ("smooth_sft", 2.5, 0.5, 0.2, "sigmoid", 0.0, 0.7),
        ("hinge", 1.0, 0.3, 0.0, "hinge", 0.0, 0.0),
        ("alphapo", 2.0, 0.25, 0.1, "sigmoid", 0.5, 0.2),
        ("alphapo_neg", 1.5, 0.0, 0.0, "sigmoid", -0.8, 0.0),
    ]:
        def per_row(policy_chosen_logps, policy_rejected_logps, chosen_len, rejected_len,
                    beta=beta, ratio=ratio, eps=eps, lt=lt, alpha=alpha, sft=sft):
            aw = policy_chosen_logps / jnp.maximum(chosen_len, 1.0)
            al = policy_rejected_logps / jnp.maximum(rejected_len, 1.0)
            x = beta * (alpha_r(alpha, aw) - alpha_r(alpha, al) - ratio)
            return margin(lt == "hinge", eps, x) - sft * aw
        params = {"beta": beta, "gamma_beta_ratio": ratio, "label_smoothing": eps, "loss_type": lt,
                  "alpha": alpha, "sft_weight": sft}
        cases.append(case(name, params, pair_inputs(6, lens=True), per_row, PAIR_DIFF))
    save("simpo", cases)


def cpo():
    cases = []
    for name, beta, eps, lt, nll, alpha, lens in [
        ("default_no_len", 0.1, 0.0, "sigmoid", 1.0, 0.0, False),
        ("smooth_len", 0.3, 0.2, "sigmoid", 0.5, 0.0, True),
        ("hinge", 0.2, 0.0, "hinge", 1.0, 0.0, True),
        ("ipo_len", 0.5, 0.0, "ipo", 1.0, 0.0, True),
        ("ipo_no_len_alpha", 0.5, 0.0, "ipo", 0.0, 0.05, False),
        ("alphapo", 0.1, 0.0, "sigmoid", 1.0, 0.03, True),
    ]:
        def per_row(policy_chosen_logps, policy_rejected_logps, chosen_len=None, rejected_len=None,
                    beta=beta, eps=eps, lt=lt, nll=nll, alpha=alpha):
            lw = jnp.maximum(chosen_len, 1.0) if chosen_len is not None else 1.0
            ll = jnp.maximum(rejected_len, 1.0) if rejected_len is not None else 1.0
            sw, sl = policy_chosen_logps, policy_rejected_logps
            if lt == "ipo":
                sw, sl = sw / lw, sl / ll
            d = alpha_r(alpha, sw) - alpha_r(alpha, sl)
            if lt == "ipo":
                l = (d - 1 / (2 * beta)) ** 2
            else:
                l = margin(lt == "hinge", eps, beta * d)
            return l - nll * policy_chosen_logps / lw
        params = {"beta": beta, "label_smoothing": eps, "loss_type": lt, "cpo_alpha": nll, "alpha": alpha}
        cases.append(case(name, params, pair_inputs(6, lens=lens), per_row, PAIR_DIFF))
    save("cpo", cases)


def kto():
    cases = []
    n, m = 8, 5
    for name, beta, wd, wu, lt, with_kl, shift in [
        ("kto_kl", 0.1, 1.0, 1.0, "kto", True, 2.0),
        ("kto_kl_clamped", 0.5, 1.5, 0.7, "kto", True, -2.0),
        ("kto_no_kl", 0.3, 1.0, 1.33, "kto", False, 0.0),
        ("apo_zero_unpaired", 0.2, 0.8, 1.2, "apo_zero_unpaired", True, 2.0),
    ]:
        inputs = {"logps": (logps(n) * 10, "f32"), "ref_logps": (logps(n) * 10, "f32"),
                  "desirable": (rng.integers(0, 2, size=n), "i64")}
        if with_kl:
            inputs["kl_logps"] = (logps(m) * 10 + shift, "f32")
            inputs["kl_ref_logps"] = (logps(m) * 10, "f32")

        def per_row(logps, ref_logps, desirable, kl_logps=None, kl_ref_logps=None,
                    beta=beta, wd=wd, wu=wu, lt=lt):
            z0 = 0.0
            if lt == "kto" and kl_logps is not None:
                z0 = jax.lax.stop_gradient(jnp.maximum(jnp.mean(kl_logps - kl_ref_logps), 0.0))
            lr = logps - ref_logps
            if lt == "kto":
                d = wd * (1 - sig(beta * (lr - z0)))
                u = wu * (1 - sig(beta * (z0 - lr)))
            else:
                d = wd * (1 - sig(beta * lr))
                u = wu * sig(beta * lr)
            return jnp.where(desirable == 1, d, u)
        params = {"beta": beta, "desirable_weight": wd, "undesirable_weight": wu, "loss_type": lt}
        cases.append(case(name, params, inputs, per_row, ["logps"]))
    save("kto", cases)


def rpo():
    cases = []
    for name, beta, eta, norm, lens in [
        ("default", 0.01, 0.005, "sum_beta", False),
        ("sum_beta", 0.2, 0.5, "sum_beta", True),
        ("token_mean", 0.1, 0.3, "token_mean", True),
        ("token_mean_no_len", 0.1, 0.3, "token_mean", False),
    ]:
        def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    chosen_len=None, beta=beta, eta=eta, norm=norm):
            x = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
            lw = jnp.maximum(chosen_len, 1.0) if chosen_len is not None else 1.0
            sft = eta * beta * (-policy_chosen_logps) if norm == "sum_beta" else eta * (-policy_chosen_logps / lw)
            return sp(-x) + sft
        params = {"beta": beta, "eta": eta, "sft_norm": norm}
        cases.append(case(name, params, pair_inputs(6, refs=True, lens=lens, lens_opt_chosen_only=True),
                          per_row, PAIR_DIFF))
    save("rpo", cases)


# ---------------------------------------------------------------- RL (token level)
def agg(l, mask, mode, max_len):
    n, t = l.shape
    if mode == "token_mean":
        den = jnp.maximum(jnp.sum(mask), 1.0) / n
    elif mode == "seq_mean_token_mean":
        den = jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    elif mode == "seq_mean_token_sum":
        den = 1.0
    else:
        den = float(max_len if max_len > 0 else t)
    return jnp.sum(mask * l, axis=-1) / den


def surrogate(delta, a, lo, hi, dual, clamp):
    if clamp:
        delta = jnp.clip(delta, -20.0, 20.0)
    r = jnp.exp(delta)
    c = jnp.maximum(-a * r, -a * jnp.clip(r, 1 - lo, 1 + hi))
    if dual is not None:
        c = jnp.where(a < 0, jnp.minimum(-a * dual, c), c)
    return c


def rl_tokens(n, t, far=True):
    lp = logps(n, t)
    old = lp + rng.uniform(-0.6, 0.6, size=(n, t))
    if far:
        old[0, 1] = lp[0, 1] - 25.0  # beyond the delta clamp
        old[1, 2] = lp[1, 2] + 30.0
    mask = (rng.uniform(size=(n, t)) < 0.8).astype(float)
    mask[0, 1] = 1.0
    mask[1, 2] = 1.0
    mask[-1, :] = 0.0  # an empty row
    return lp, old, mask


AGGS = ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"]


def ppo_clip():
    cases = []
    n, t = 4, 6
    for name, lo, hi, cc, mode, ml in [
        ("default", 0.2, 0.2, 0.0, "token_mean", 0),
        ("dual_clip_asym", 0.2, 0.28, 3.0, "token_mean", 0),
        ("seq_mean_token_mean", 0.1, 0.3, 2.0, "seq_mean_token_mean", 0),
        ("seq_mean_token_sum", 0.2, 0.2, 0.0, "seq_mean_token_sum", 0),
        ("dr_grpo_norm", 0.2, 0.2, 0.0, "seq_mean_token_sum_norm", 9),
        ("dr_grpo_norm_T", 0.2, 0.2, 0.0, "seq_mean_token_sum_norm", 0),
    ]:
        lp, old, mask = rl_tokens(n, t)
        inputs = {"logps": (lp, "f32"), "old_logps": (old, "f32"),
                  "advantages": (rng.normal(size=(n, t)) * 1.5, "f32"), "mask": (mask, "f32")}

        def per_row(logps, old_logps, advantages, mask, lo=lo, hi=hi, cc=cc, mode=mode, ml=ml):
            l = surrogate(logps - old_logps, advantages, lo, hi, cc if cc > 0 else None, True)
            return agg(l, mask, mode, ml)
        params = {"clip_low": lo, "clip_high": hi, "clip_ratio_c": cc, "loss_agg": mode, "max_len": ml}
        cases.append(case(name, params, inputs, per_row, ["logps"]))
    save("ppo_clip", cases)


def grpo_adv(rewards, g, scale):
    r = np.asarray(rewards).reshape(-1, g)
    m = r.mean(axis=1, keepdims=True)
    if scale == "group":
        s = r.std(axis=1, ddof=1, keepdims=True) if g > 1 else np.zeros_like(m)
        a = (r - m) / (s + 1e-4)
    elif scale == "batch":
        s = np.asarray(rewards).std(ddof=1) if len(rewards) > 1 else 0.0
        a = (r - m) / (s + 1e-4)
    else:
        a = r - m
    return a.reshape(-1)


def grpo():
    cases = []
    n, t = 6, 5
    for name, g, scale, beta, lo, hi, mode, ml, with_old, with_ref in [
        ("default", 3, "group", 0.04, 0.2, 0.2, "seq_mean_token_mean", 0, True, True),
        ("on_policy_no_old", 2, "group", 0.04, 0.2, 0.2, "seq_mean_token_mean", 0, False, True),
        ("batch_scale_dapo", 3, "batch", 0.1, 0.2, 0.28, "token_mean", 0, True, True),
        ("no_scale_dr_grpo", 6, "none", 0.0, 0.2, 0.2, "seq_mean_token_sum_norm", 8, True, False),
        ("group_of_one", 1, "group", 0.0, 0.2, 0.2, "seq_mean_token_sum", 0, True, False),
    ]:
        lp, old, mask = rl_tokens(n, t, far=False)
        rewards = rng.normal(size=n)
        rewards[0:2] = 0.5  # equal rewards inside a group of 2
        inputs = {"logps": (lp, "f32"), "mask": (mask, "f32"), "rewards": (rewards, "f32")}
        if with_old:
            inputs["old_logps"] = (old, "f32")
        if with_ref:
            inputs["ref_logps"] = (lp + rng.uniform(-0.5, 0.5, size=(n, t)), "f32")
        adv = grpo_adv(f32(rewards), g, scale)

        def per_row(logps, mask, rewards, old_logps=None, ref_logps=None, beta=beta, lo=lo, hi=hi,
                    mode=mode, ml=ml, adv=adv):
            old_ = old_logps if old_logps is not None else jax.lax.stop_gradient(logps)
            a = jnp.asarray(adv)[:, None]
            l = surrogate(logps - old_, a, lo, hi, None, False)
            if beta != 0:
                rho = ref_logps - logps
                l = l + beta * (jnp.exp(rho) - rho - 1)
            return agg(l, mask, mode, ml)
        params = {"group_size": g, "scale_rewards": scale, "beta": beta, "epsilon_low": lo,
                  "epsilon_high": hi, "loss_agg": mode, "max_len": ml}
        cases.append(case(name, params, inputs, per_row, ["logps"]))
    save("grpo", cases)


def steer():
    cases = []
    n, t = 4, 6
    for name, mapping, wmin, wmax, cc, mode in [
        ("linear", "linear", 0.8, 1.2, 10.0, "token_mean"),
        ("exp", "exp", 0.8, 1.2, 10.0, "token_mean"),
        ("linear_wide_seq", "linear", 0.5, 2.0, 3.0, "seq_mean_token_mean"),
        ("exp_low", "exp", 0.3, 1.2, 2.0, "seq_mean_token_sum"),
    ]:
        lp, old, mask = rl_tokens(n, t)
        ent = rng.uniform(0.0, 3.0, size=(n, t))
        inputs = {"logps": (lp, "f32"), "old_logps": (old, "f32"),
                  "advantages": (rng.normal(size=(n, t)), "f32"), "entropy": (ent, "f32"),
                  "mask": (mask, "f32")}

        def weights(logps, old_logps, advantages, entropy, mask, mapping=mapping, wmin=wmin, wmax=wmax):
            p = jnp.clip(jnp.exp(logps), 1e-8, 1 - 1e-8)
            om = jnp.abs(advantages / jnp.clip(jnp.exp(old_logps), 1e-8, 1.0) * p * (1 - p) * (jnp.log(p) + entropy))
            om = jnp.where(jnp.isfinite(om), om, 0.0)
            big = jnp.where(mask > 0, om, -jnp.inf).max()
            small = jnp.where(mask > 0, om, jnp.inf).min()
            if mapping == "exp":
                k = -jnp.log(wmin) / jnp.maximum(big, 0.02)
                return jnp.clip(jnp.exp(-k * om), wmin, 1.0)
            return jnp.where(big > small,
                             jnp.clip(wmax - (om - small) * (wmax - wmin) / jnp.where(big > small, big - small, 1.0), wmin, wmax),
                             0.5 * (wmin + wmax))

        def per_row(logps, old_logps, advantages, entropy, mask, cc=cc, mode=mode, weights=weights):
            w = jax.lax.stop_gradient(weights(logps, old_logps, advantages, entropy, mask))
            l = w * surrogate(logps - old_logps, advantages, 0.2, 0.28, cc, True)
            return agg(l, mask, mode, 0)
        params = {"mapping": mapping, "weight_min": wmin, "weight_max": wmax, "clip_ratio_c": cc,
                  "loss_agg": mode}
        cases.append(case(name, params, inputs, per_row, ["logps"]))
    save("steer", cases)


# ---------------------------------------------------------------- more pairwise losses
def inpo():
    cases = []
    for eta, tau in [(1.0, 0.1), (2.0, 0.5), (0.3, 0.0)]:
        inputs = pair_inputs(6, refs=True)
        inputs["prev_chosen_logps"] = (logps(6) * 10, "f32")
        inputs["prev_rejected_logps"] = (logps(6) * 10, "f32")

        def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    prev_chosen_logps, prev_rejected_logps, eta=eta, tau=tau):
            h = (policy_chosen_logps - policy_rejected_logps) - eta * tau * (ref_chosen_logps - ref_rejected_logps) \
                - (1 - eta * tau) * (prev_chosen_logps - prev_rejected_logps)
            return (h - eta / 2) ** 2
        cases.append(case(f"eta_{eta}_tau_{tau}", {"eta": eta, "tau": tau}, inputs, per_row, PAIR_DIFF))
    save("inpo", cases)


def osp_spce():
    cases = []
    for beta in [0.1, 0.7]:
        inputs = pair_inputs(6, refs=True)
        st = rng.uniform(0, 1, size=6)
        st[0], st[1] = 0.0, 1.0
        inputs["strength"] = (st, "f32")

        def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    strength, beta=beta):
            x = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
            return strength * sp(-x) + (1 - strength) * sp(x)
        cases.append(case(f"beta_{beta}", {"beta": beta}, inputs, per_row, PAIR_DIFF))
    save("osp_spce", cases)


def mapl():
    cases = []
    for name, beta, mode, wi, we, refs, lev in [
        ("dpo_levels", 0.3, "dpo", 0.5, 2.0, True, True),
        ("dpo_no_ref", 0.2, "dpo", 1.0, 1.0, False, False),
        ("rm_levels", 0.1, "rm", 0.7, 1.5, False, True),
    ]:
        inputs = {"win_logps": (logps(6) * 5, "f32"), "lose_logps": (logps(6) * 5, "f32")}
        if refs:
            inputs["ref_win_logps"] = (logps(6) * 5, "f32")
            inputs["ref_lose_logps"] = (logps(6) * 5, "f32")
        if lev:
            inputs["level"] = (np.array([0, 1, 2, 2, 1, 0]), "i64")

        def per_row(win_logps, lose_logps, ref_win_logps=None, ref_lose_logps=None, level=None,
                    beta=beta, mode=mode, wi=wi, we=we):
            rw = ref_win_logps if ref_win_logps is not None else 0.0
            rl = ref_lose_logps if ref_lose_logps is not None else 0.0
            z = (win_logps - lose_logps) if mode == "rm" else beta * ((win_logps - rw) - (lose_logps - rl))
            w = jnp.asarray([1.0, wi, we])[level] if level is not None else 1.0
            return w * sp(-z)
        params = {"beta": beta, "mode": mode, "w_intra": wi, "w_inter": we}
        cases.append(case(name, params, inputs, per_row, ["win_logps", "lose_logps"]))
    save("mapl", cases)


# ---------------------------------------------------------------- list-wise and other losses
def yojo_nway():
    cases = []
    n = 5
    for name, k, tau, soft, pad in [
        ("hard", 4, 1.0, False, False),
        ("hard_padded_tau", 4, 0.5, False, True),
        ("soft_padded_tau", 5, 2.0, True, True),
        ("bradley_terry", 2, 1.0, False, False),
    ]:
        scores = rng.normal(size=(n, k)) * 2.0
        valid = np.ones((n, k))
        if pad:
            valid[1, k - 1] = 0.0
            valid[3, k - 2:] = 0.0
        inputs = {"scores": (scores, "f32")}
        if soft:
            q = rng.uniform(0.0, 1.0, size=(n, k)) * valid
            q[2, 0] = 0.0
            q = q / q.sum(axis=1, keepdims=True)
            q[4] *= 0.6  # unnormalised row
            inputs["target_probs"] = (q, "f32")
        else:
            t = np.array([int(rng.integers(0, int(valid[i].sum()))) for i in range(n)])
            t[2] = -100  # ignored row
            inputs["target"] = (t, "i64")
        if pad:
            inputs["valid"] = (valid, "f32")

        def per_row(scores, target=None, target_probs=None, valid=None, tau=tau, k=k):
            z = scores / tau
            if valid is not None:
                z = jnp.where(valid > 0, z, -jnp.inf)
            lp = jax.nn.log_softmax(z, axis=-1)
            if target is not None:
                keep = target != -100
                y = jnp.where(keep, target, 0)
                return jnp.where(keep, -jnp.take_along_axis(lp, y[:, None], axis=-1)[:, 0], 0.0)
            return -jnp.sum(jnp.where(target_probs > 0, target_probs * jnp.where(valid > 0, lp, 0.0), 0.0), axis=-1)
        den = None if soft else int(np.sum(inputs["target"][0] != -100))
        cases.append(case(name, {"temperature": tau}, inputs, per_row, ["scores"], mean_den=den))
    save("yojo_nway", cases)


def solireward_btwt():
    cases = []
    b = 8
    for name, m, eps, wbt, wtie, wbce, eb, quality in [
        ("default_ties", 3.0, 0.0, 1.0, 1.0, 0.0, 0.0, True),
        ("no_labels", 3.0, 0.0, 1.0, 1.0, 0.0, 0.0, False),
        ("smooth_weights", 1.0, 0.2, 2.0, 0.5, 0.0, 0.0, True),
        ("bce", 2.0, 0.1, 1.0, 1.5, 0.7, 0.2, True),
    ]:
        inputs = {"reward_chosen": (rng.normal(size=b) * 3, "f32"),
                  "reward_rejected": (rng.normal(size=b) * 3, "f32")}
        if quality:
            qc = np.array([1, 1, 0, 0, 1, 0, 1, 1], dtype=float)
            qr = np.array([0, 1, 0, 1, 1, 1, 0, 0], dtype=float)
            inputs["quality_chosen"] = (qc, "f32")
            inputs["quality_rejected"] = (qr, "f32")

        def per_row(reward_chosen, reward_rejected, quality_chosen=None, quality_rejected=None,
                    m=m, eps=eps, wbt=wbt, wtie=wtie, wbce=wbce, eb=eb):
            d = reward_chosen - reward_rejected
            bt = (1 - eps) * sp(m - d) + eps * sp(m + d)
            if quality_chosen is None:
                return wbt * bt
            tie = sp(m - d) + sp(m + d)
            l = jnp.where(quality_chosen == quality_rejected, wtie * tie, wbt * bt)
            if wbce > 0:
                def bce(z, q):
                    y = jnp.where(q > 0, 1.0 - eb, 0.0) + 0.5 * eb
                    return -(y * logsig(z) + (1 - y) * logsig(-z))
                l = l + wbce * 0.5 * (bce(reward_chosen, quality_chosen) + bce(reward_rejected, quality_rejected))
            return l
        params = {"margin": m, "bt_label_smoothing": eps, "bt_weight": wbt, "tie_weight": wtie,
                  "bce_weight": wbce, "bce_label_smoothing": eb}
        cases.append(case(name, params, inputs, per_row, ["reward_chosen", "reward_rejected"]))
    save("solireward_btwt", cases)


def dpa_semantic():
    cases = []
    b = 6
    for name, core, cond, link, beta, refs, lens in [
        ("dpo_ratio", 4, 6, "ratio", 0.3, True, False),
        ("cross_entropy", 12, 15, "ratio", 0.5, True, False),
        ("likelihood_unlikelihood", 4, 15, "ratio", 0.2, False, False),
        ("implication", 13, 15, "ratio", 0.4, True, False),
        ("conditioned", 12, 14, "ratio", 0.3, True, False),
        ("odds_dpo", 4, 6, "odds", 0.1, False, True),
        ("odds_implication", 13, 15, "odds", 0.1, True, True),
        ("trivial", 15, 6, "ratio", 0.3, True, False),
    ]:
        inputs = pair_inputs(b, refs=refs, lens=lens)

        def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps=None,
                    ref_rejected_logps=None, chosen_len=None, rejected_len=None,
                    core=core, cond=cond, link=link, beta=beta):
            if link == "ratio":
                rc = ref_chosen_logps if ref_chosen_logps is not None else 0.0
                rr = ref_rejected_logps if ref_rejected_logps is not None else 0.0
                zw = beta * (policy_chosen_logps - rc)
                zl = beta * (policy_rejected_logps - rr)
            else:
                lw = jnp.maximum(chosen_len, 1.0) if chosen_len is not None else 1.0
                ll = jnp.maximum(rejected_len, 1.0) if rejected_len is not None else 1.0
                aw, al = policy_chosen_logps / lw, policy_rejected_logps / ll
                # probability p = e^a of the average token; log-odds log(p / (1 - p))
                zw = jnp.log(jnp.exp(aw)) - jnp.log1p(-jnp.exp(aw))
                zl = jnp.log(jnp.exp(al)) - jnp.log1p(-jnp.exp(al))
            pw, pl = sig(zw), sig(zl)
            # probability of each world k = 2 b_w + b_l, summed over the masks directly
            probs = [(1 - pw) * (1 - pl), (1 - pw) * pl, pw * (1 - pl), pw * pl]
            p_cond = sum(probs[k] for k in range(4) if cond >> k & 1)
            p_both = sum(probs[k] for k in range(4) if (core & cond) >> k & 1)
            return -jnp.log(p_both / p_cond)
        params = {"core": core, "cond": cond, "link": link, "beta": beta}
        cases.append(case(name, params, inputs, per_row, PAIR_DIFF))
    save("dpa_semantic", cases)


def spo_degree():
    cases = []
    n = 5
    for name, k, beta, score, obj, lam, refs, lens in [
        ("ce_ratio", 4, 0.1, "ratio", "ce", 1.0, True, False),
        ("ce_ratio_no_ref", 3, 0.3, "ratio", "ce", 0.5, False, False),
        ("pl_ratio", 5, 0.2, "ratio", "plackett_luce", 1.0, True, False),
        ("ce_avg", 4, 2.0, "avg", "ce", 1.0, True, True),
        ("pl_avg", 4, 2.0, "avg", "plackett_luce", 1.5, False, True),
        ("pl_two", 2, 0.4, "ratio", "plackett_luce", 1.0, True, False),
    ]:
        inputs = {"variant_logps": (logps(n, k) * 10, "f32")}
        if refs:
            inputs["variant_ref_logps"] = (logps(n, k) * 10, "f32")
        if lens:
            inputs["variant_len"] = (rng.integers(0, 15, size=(n, k)).astype(float), "f32")

        def per_row(variant_logps, variant_ref_logps=None, variant_len=None, beta=beta,
                    score=score, obj=obj, lam=lam, k=k):
            if score == "avg":
                z = beta * variant_logps / jnp.maximum(variant_len, 1.0) if variant_len is not None \
                    else beta * variant_logps
            else:
                ref = variant_ref_logps if variant_ref_logps is not None else 0.0
                z = beta * (variant_logps - ref)
            if obj == "ce":
                return -lam * jax.nn.log_softmax(z, axis=-1)[:, 0]
            # Plackett-Luce: minus the log-likelihood of the order 0, 1, ..., K-1
            return -lam * sum(jax.nn.log_softmax(z[:, j:], axis=-1)[:, 0] for j in range(k - 1))
        params = {"beta": beta, "score": score, "objective": obj, "weight": lam}
        cases.append(case(name, params, inputs, per_row, ["variant_logps"]))
    save("spo_degree", cases)


def hypo():
    """The value is DPO + lam * mean(kappa); the online gradient is the leave-one-out REINFORCE
    estimator, written with stop-gradients so that jax.grad gives it while the value stays."""
    cases = []
    b = 5
    sg = jax.lax.stop_gradient
    for name, k, beta, lam in [("default", 4, 0.1, 0.1), ("k2_strong", 2, 0.5, 1.0), ("k6", 6, 0.3, 0.4)]:
        inputs = pair_inputs(b, refs=True)
        inputs["online_logps"] = (logps(b, k) * 10, "f32")
        inputs["online_ref_logps"] = (logps(b, k) * 10, "f32")

        def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    online_logps, online_ref_logps, beta=beta, lam=lam, k=k):
            x = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
            kappa = online_logps - online_ref_logps
            value = lam * jnp.mean(kappa, axis=-1)
            loo = (jnp.sum(kappa, axis=-1, keepdims=True) - kappa) / (k - 1)
            surrogate = lam / k * jnp.sum(sg(kappa - loo) * online_logps, axis=-1)
            return sp(-x) + sg(value - surrogate) + surrogate
        cases.append(case(name, {"beta": beta, "lam": lam}, inputs, per_row, PAIR_DIFF + ["online_logps"]))
    save("hypo", cases)


def seppo():
    cases = []
    b = 8
    for name, beta, crit in [("anchor_default_beta", 5000.0, "anchor"), ("anchor", 3.0, "anchor"),
                             ("always_lose", 4.0, "always_lose")]:
        scale = 1e-3 if beta > 100 else 0.5
        base = rng.uniform(0.05, 0.3, size=(4, b))
        dev = rng.normal(size=(2, b)) * scale
        inputs = {"err_win": (base[0] + dev[0], "f32"), "err_win_ref": (base[0], "f32"),
                  "err_sample": (base[1] + np.abs(dev[1]) * np.sign(rng.normal(size=b)), "f32"),
                  "err_sample_ref": (base[1], "f32")}
        inputs["err_win"] = (np.abs(inputs["err_win"][0]), "f32")  # MSEs are >= 0
        inputs["err_sample"] = (np.abs(inputs["err_sample"][0]), "f32")

        def per_row(err_win, err_win_ref, err_sample, err_sample_ref, beta=beta, crit=crit):
            dw = err_win - err_win_ref
            dr = err_sample - err_sample_ref
            s = jnp.where(dw <= 0, 1.0, -1.0) if crit == "anchor" else 1.0
            return -logsig(-0.5 * beta * (dw - s * dr))
        cases.append(case(name, {"beta": beta, "criterion": crit}, inputs, per_row, ["err_win", "err_sample"]))
    save("seppo", cases)


def sparsepo():
    cases = []
    b, t = 3, 5
    for name, beta, mode, lu, ld, with_mu, with_md in [
        ("plain_masks_absent", 0.1, "independent", 0.0, 0.0, False, False),
        ("independent_l1", 0.5, "independent", 0.1, 0.05, True, True),
        ("independent_reward_only", 0.3, "independent", 0.2, 0.4, True, False),
        ("common_l1", 0.5, "common", 0.1, 0.3, True, False),
    ]:
        lp = logps(2, b, t)
        mask = (rng.uniform(size=(2, b, t)) < 0.8).astype(float)
        mask[1, 2, :] = 0.0  # an empty rejected response
        inputs = {"token_logps": (lp, "f32"), "ref_token_logps": (lp + rng.normal(size=(2, b, t)) * 0.4, "f32"),
                  "token_kl": (-rng.uniform(0.0, 0.6, size=(2, b, t)), "f32"), "mask": (mask, "f32")}
        if with_mu:
            mu = rng.uniform(0.1, 1.5, size=(2, b, t))
            mu[0, 0, 0] = 0.0  # sign(0) = 0
            inputs["reward_mask"] = (mu, "f32")
        if with_md:
            inputs["kl_mask"] = (rng.uniform(0.1, 1.5, size=(2, b, t)), "f32")

        def per_row(token_logps, ref_token_logps, token_kl, mask, reward_mask=None, kl_mask=None,
                    beta=beta, mode=mode, lu=lu, ld=ld):
            mu = reward_mask if reward_mask is not None else 1.0
            md = mu if mode == "common" else (kl_mask if kl_mask is not None else 1.0)
            U = jnp.sum(mask * mu * (token_logps - ref_token_logps), axis=-1)
            K = jnp.sum(mask * md * token_kl, axis=-1)
            l = -logsig(beta * ((U[0] - U[1]) - (K[0] - K[1])))
            # |m| with the subgradient sign(0) = 0 of the spec (jnp.abs has 1 at 0)
            pen = lambda m: jnp.sum(mask * jnp.where(m == 0, 0.0, jnp.abs(m)), axis=(0, 2))  # noqa: E731
            if mode == "common":
                if reward_mask is not None:
                    l = l + 0.5 * (lu + ld) * pen(reward_mask)
            else:
                if reward_mask is not None:
                    l = l + lu * pen(reward_mask)
                if kl_mask is not None:
                    l = l + ld * pen(kl_mask)
            return l
        params = {"beta": beta, "mask_mode": mode, "l1_reward": lu, "l1_kl": ld}
        cases.append(case(name, params, inputs, per_row,
                          ["token_logps", "token_kl", "reward_mask", "kl_mask"]))
    save("sparsepo", cases)


def sparsepo_mask():
    cases = []
    for name, (nl, n, t) in [("three_layers", (3, 4, 6)), ("one_layer", (1, 3, 5))]:
        act = rng.normal(size=(nl, n, t)) * 2.0
        mask = (rng.uniform(size=(n, t)) < 0.75).astype(float)
        mask[0, :] = 0.0
        mask[0, 1] = 1.0  # a single masked token: max = min
        mask[n - 1, :] = 0.0  # a fully masked row
        if nl > 1:
            act[1, 1, :] = 0.7  # a constant layer row: max = min
        inputs = {"activations": (act, "f32"), "mask": (mask, "f32")}

        def token_mask(activations, mask):
            on = mask > 0
            lo = jnp.min(jnp.where(on, activations, jnp.inf), axis=-1, keepdims=True)
            hi = jnp.max(jnp.where(on, activations, -jnp.inf), axis=-1, keepdims=True)
            span = jnp.where(hi > lo, hi - lo, 1.0)
            r = jnp.where(hi > lo, (activations - lo) / span, 1.0)
            return jnp.where(on, jnp.mean(r, axis=0), 0.0)

        def per_row(activations, mask):
            return jnp.sum(token_mask(activations, mask), axis=-1)
        cases.append(case(name, {}, inputs, per_row, [], aux={"token_mask": token_mask}))
    save("sparsepo_mask", cases)


def aot():
    """Batch-level: loss_none holds the sorted terms (sum and mean follow)."""
    cases = []
    for name, b, variant, beta, eps in [
        ("paired", 7, "paired", 0.1, 0.0),
        ("paired_smooth", 6, "paired", 0.5, 0.2),
        ("unpaired", 7, "unpaired", 0.3, 0.0),
        ("unpaired_smooth", 5, "unpaired", 0.7, 0.1),
        ("single_pair", 1, "paired", 0.4, 0.1),
    ]:
        inputs = pair_inputs(b, refs=True)

        def per_row(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    variant=variant, beta=beta, eps=eps):
            if variant == "paired":
                u = policy_chosen_logps - policy_rejected_logps
                v = ref_chosen_logps - ref_rejected_logps
            else:
                u = policy_chosen_logps - ref_chosen_logps
                v = policy_rejected_logps - ref_rejected_logps
            d = beta * (jnp.sort(u) - jnp.sort(v))
            return -(1 - eps) * logsig(d) - eps * logsig(-d)
        params = {"variant": variant, "beta": beta, "label_smoothing": eps}
        cases.append(case(name, params, inputs, per_row, PAIR_DIFF))
    save("aot", cases)


def grad_entanglement():
    cases = []
    for name, b, d, lw, ll in [("dpo_margin", 4, 9, 1.0, 1.0), ("simpo_margin", 3, 16, 0.25, 0.1)]:
        gw = rng.normal(size=(b, d))
        gl = 0.6 * gw + rng.normal(size=(b, d)) * 0.8  # entangled
        gl[b - 1] = 0.0  # a zero gradient: ratios and cos are 0
        inputs = {"grad_chosen": (gw, "f32"), "grad_rejected": (gl, "f32")}

        def stats(grad_chosen, grad_rejected, lw=lw, ll=ll):
            ip = jnp.sum(grad_chosen * grad_rejected, axis=-1)
            nw = jnp.sum(grad_chosen ** 2, axis=-1)
            nl = jnp.sum(grad_rejected ** 2, axis=-1)
            safe = lambda x, den: jnp.where(den > 0, x / jnp.where(den > 0, den, 1.0), 0.0)  # noqa: E731
            cos = safe(ip, jnp.linalg.norm(grad_chosen, axis=-1) * jnp.linalg.norm(grad_rejected, axis=-1))
            return jnp.stack([ip, nw, nl, cos, safe(ip, nw), safe(ip, nl), lw * nw - ll * ip, lw * ip - ll * nl], axis=-1)

        def per_row(grad_chosen, grad_rejected):
            return stats(grad_chosen, grad_rejected)[:, 3]
        cases.append(case(name, {"lambda_w": lw, "lambda_l": ll}, inputs, per_row, [], aux={"stats": stats}))
    save("grad_entanglement", cases)


def rso_accept():
    """The selection follows the paper's listing, written here as a plain loop in numpy."""
    cases = []
    for name, n, k, beta, m, pad in [("default", 3, 10, 0.5, 8, False), ("sharp_padded", 4, 6, 0.1, 3, True),
                                     ("flat_all", 2, 5, 5.0, 5, False)]:
        rewards = f32(rng.normal(size=(n, k)))
        uniforms = f32(rng.uniform(0.0, 1.0, size=(n, k, k)))
        valid = np.ones((n, k))
        if pad:
            valid[1, [0, 4]] = 0.0
            valid[3, 5] = 0.0
        inputs = {"rewards": (rewards, "f32"), "uniforms": (uniforms, "f32")}
        if pad:
            inputs["valid"] = (valid, "f32")
        accepted = -np.ones((n, k))
        value = np.zeros(n)
        prob = np.zeros((n, k))
        for i in range(n):
            cand = [j for j in range(k) if valid[i, j] > 0]
            best = max(rewards[i, j] for j in cand)
            for j in cand:
                prob[i, j] = np.exp((rewards[i, j] - best) / beta)
            chosen = []
            rnd = 0
            while len(chosen) < m:
                top = max(rewards[i, j] for j in cand)
                kept = []
                for j in cand:
                    if len(chosen) < m and uniforms[i, rnd, j] < np.exp((rewards[i, j] - top) / beta):
                        chosen.append(j)
                    else:
                        kept.append(j)
                cand = kept
                rnd += 1
            accepted[i, :m] = chosen
            value[i] = np.mean([rewards[i, j] for j in chosen])
        out = case(name, {"beta": beta, "num_samples": m}, inputs, lambda **_: jnp.asarray(value), [],
                   aux={"accepted": lambda **_: jnp.asarray(accepted),
                        "rso_accept_prob": lambda **_: jnp.asarray(prob)})
        cases.append(out)
    save("rso_accept", cases)


if __name__ == "__main__":
    token_logprobs()
    dpo()
    orpo()
    simpo()
    cpo()
    kto()
    rpo()
    ppo_clip()
    grpo()
    steer()
    inpo()
    osp_spce()
    mapl()
    yojo_nway()
    solireward_btwt()
    dpa_semantic()
    spo_degree()
    hypo()
    seppo()
    sparsepo()
    sparsepo_mask()
    aot()
    grad_entanglement()
    rso_accept()
