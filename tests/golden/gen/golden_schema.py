"""The one schema of the golden files under tests/golden/<family>/<id>.json, shared by every
generator in this directory and read by tests/common/golden.rs.

    {"id": str, "generator": str, "versions": {library: version},
     "cases": [{
        "name": str,
        "params": {name: number | bool | choice},
        "inputs": {name: {"shape": [int], "dtype": "f32" | "i64", "data": [number]}},
        "calls": [{
            "reduction": "none" | "mean" | "sum",
            "grad_output": [number],            (optional; absent = 1)
            "loss": [number],                   (N values for none, 1 for mean and sum)
            "grads": {input: [number]},         (optional: gradients of the reduced loss)
            "aux": {output: [number]}           (optional: auxiliary outputs)
        }],
        "terms": [number]                       (optional, batch-level losses: the terms
                                                 whose sum is the loss; not compared)
     }]}

Absent optional inputs are left out of "inputs". Every number is a float64 from an
independent implementation; f32 inputs hold values already rounded to f32.

The `v1_*` functions build cases of this schema from the per-family layouts the generators
compute (and that earlier golden files were written in); `dump` writes a document.
"""

import json
import sys


def tensor(shape, data, dtype):
    return {"shape": [int(d) for d in shape], "dtype": dtype, "data": list(data)}


def call(reduction, loss, grads=None, aux=None, grad_output=None):
    out = {"reduction": reduction}
    if grad_output is not None:
        out["grad_output"] = list(grad_output)
    out["loss"] = list(loss)
    if grads:
        out["grads"] = dict(grads)
    if aux:
        out["aux"] = dict(aux)
    return out


def _dtype_of(data):
    return "i64" if data and all(isinstance(v, int) and not isinstance(v, bool) for v in data) else "f32"


def inputs_with_dtype(inputs):
    """{name: {"shape", "data"[, "dtype"]}} with the dtype made explicit (integers = i64)."""
    out = {}
    for k, t in inputs.items():
        dtype = t.get("dtype") or _dtype_of(t["data"])
        out[k] = tensor(t["shape"], t["data"], dtype)
    return out


def v1_reductions(case):
    """A case with "loss_none", "loss_sum", "loss_mean", "grad_sum", "grad_mean" and optional
    "aux" (classification generators), or a batch-level one with "batch_level", "loss" and
    "grad" (the scalar of mean and sum)."""
    out = {"name": case["name"], "params": case["params"],
           "inputs": inputs_with_dtype(case["inputs"])}
    aux = case.get("aux") or None
    if case.get("batch_level") and "loss" in case:
        out["calls"] = [call(r, [case["loss"]], case.get("grad")) for r in ("mean", "sum")]
        return out
    calls = []
    if not case.get("batch_level"):
        calls.append(call("none", case["loss_none"], case.get("grad_sum"), aux))
    else:
        out["terms"] = case["loss_none"]
    calls.append(call("sum", [case["loss_sum"]], case.get("grad_sum"), aux))
    calls.append(call("mean", [case["loss_mean"]], case.get("grad_mean"), aux))
    out["calls"] = calls
    return out


def v1_rows(case, batch_level):
    """A case with "loss_none" (per-row losses, or the terms of a batch-level loss),
    "grads_sum" (gradients of the sum), optional "aux" and optional "mean_den" (the `mean`
    denominator when it is not the number of rows; preference generator). The sum is the
    sequential float64 sum of the rows and the mean that sum over the denominator."""
    rows = case["loss_none"]
    total = 0.0
    for v in rows:
        total += v
    den = case.get("mean_den", len(rows))
    mean = 0.0 if den == 0 else total / den
    aux = case.get("aux") or None
    out = {"name": case["name"], "params": case["params"],
           "inputs": inputs_with_dtype(case["inputs"])}
    calls = []
    if batch_level:
        out["terms"] = rows
        calls.append(call("sum", [total], case.get("grads_sum"), aux))
    else:
        calls.append(call("none", rows, None, aux))
        calls.append(call("sum", [total], case.get("grads_sum")))
    calls.append(call("mean", [mean]))
    out["calls"] = calls
    return out


def v1_flat(case, inputs, grads, aux):
    """A case with one reduction and flat fields (cross_entropy, cut_cross_entropy): `inputs`
    maps an input name to (field, shape, dtype), `grads` an input name to its field, `aux` an
    output name to its field; null fields are absent inputs / gradients."""
    ins = {}
    for name, (field, shape, dtype) in inputs.items():
        if case.get(field) is not None:
            ins[name] = tensor(shape, case[field], dtype)
    g = {name: case[f] for name, f in grads.items() if case.get(f) is not None}
    a = {name: case[f] for name, f in aux.items() if case.get(f) is not None}
    return {"name": case["name"], "params": case["params"], "inputs": ins,
            "calls": [call(case["reduction"], case["loss"], g, a, case.get("grad_output"))]}


def v1_cross_entropy(c):
    """A cross_entropy case (fields n, c, reduction, logits, target, class_weights,
    sample_weight, loss, grad, lse)."""
    n, k = c["n"], c["c"]
    return v1_flat(c, {
        "logits": ("logits", [n, k], "f32"),
        "target": ("target", [n], "i64"),
        "class_weights": ("class_weights", [k], "f32"),
        "sample_weight": ("sample_weight", [n], "f32"),
    }, {"logits": "grad"}, {"lse": "lse"})


def v1_cut_cross_entropy(c):
    """A cut_cross_entropy case (fields n, d, v, reduction, e, c, targets, bias, sample_weight,
    grad_output, loss, de, dc, dbias, lse)."""
    n, d, v = c["n"], c["d"], c["v"]
    return v1_flat(c, {
        "e": ("e", [n, d], "f32"),
        "c": ("c", [v, d], "f32"),
        "targets": ("targets", [n], "i64"),
        "bias": ("bias", [v], "f32"),
        "sample_weight": ("sample_weight", [n], "f32"),
    }, {"e": "de", "c": "dc", "bias": "dbias"}, {"lse": "lse"})


def document(id_, generator, versions, cases):
    return {"id": id_, "generator": generator, "versions": versions, "cases": cases}


def dump(doc, path=None):
    """Write `doc` (to `path`, or stdout) as compact JSON with a final newline."""
    text = json.dumps(doc, separators=(",", ":")) + "\n"
    if path is None:
        sys.stdout.write(text)
    else:
        with open(path, "w") as f:
            f.write(text)
