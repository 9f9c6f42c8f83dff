#!/usr/bin/env python3
"""Time softmax cross-entropy forward+backward in JAX (and PyTorch, if importable) against
`losskit bench`, on the same shapes, in the same run, and print the ratios.

Requirements (this script installs nothing):
    pip install jax            # required: jax + jaxlib, CPU is enough
    pip install torch          # optional: adds PyTorch's F.cross_entropy rows
    cargo build --release      # the losskit binary (target/release/losskit)

Usage:
    python benches/compare_jax.py [--shapes 4096x32000,8192x50257] [--reps 10]
                                  [--losskit target/release/losskit] [--no-torch]

What is timed (f32 logits [N, V], integer labels [N], mean over rows):
  * losskit: `losskit bench --json` (cross_entropy, gradient written over the logits), which
    also measures the machine's in-place memory bandwidth on the same buffer.
  * JAX: jax.jit(jax.value_and_grad(ce)) with ce = mean(logsumexp(z) - z[label]); one
    compile call and 2 warm-up calls, then `reps` timed calls, each ending with
    block_until_ready() on the gradient. JAX returns a new gradient array on every call.
  * PyTorch: x.grad = None; F.cross_entropy(x, y).backward(); 2 warm-ups, then `reps` calls,
    with torch.set_num_threads(os.cpu_count()).
Best (minimum) and median times are reported; the ratios use the best times.

Last run: see the README's benchmark section (machine, versions and figures).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def parse_shapes(s):
    out = []
    for part in s.split(","):
        n, v = part.lower().split("x")
        out.append((int(n), int(v)))
    return out


def time_calls(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return min(ts), statistics.median(ts)


def bench_jax(n, v, reps, rng):
    import jax
    import jax.numpy as jnp
    import numpy as np

    def ce(logits, labels):
        lse = jax.nn.logsumexp(logits, axis=-1)
        picked = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
        return jnp.mean(lse - picked)

    f = jax.jit(jax.value_and_grad(ce))
    x = jnp.asarray(rng.standard_normal((n, v), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, v, n, dtype=np.int32))
    loss, grad = f(x, y)  # compile
    grad.block_until_ready()

    def call():
        _, g = f(x, y)
        g.block_until_ready()

    best, med = time_calls(call, reps)
    del x, y, grad
    return best, med, float(loss)


def bench_torch(n, v, reps, rng):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.from_numpy(rng.standard_normal((n, v), dtype="float32")).requires_grad_()
    y = torch.from_numpy(rng.integers(0, v, n)).long()

    def call():
        x.grad = None
        F.cross_entropy(x, y).backward()

    best, med = time_calls(call, reps)
    del x, y
    return best, med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="4096x32000,8192x50257")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--losskit", default=os.path.join("target", "release", "losskit"))
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    shapes = parse_shapes(a.shapes)

    try:
        import jax
        import numpy as np
    except ImportError:
        sys.exit("compare_jax.py needs JAX: pip install jax")
    have_torch = False
    if not a.no_torch:
        try:
            import torch  # noqa: F401

            have_torch = True
        except ImportError:
            pass
    if not os.path.exists(a.losskit):
        sys.exit(f"no losskit binary at {a.losskit}: run `cargo build --release` first")

    with tempfile.TemporaryDirectory() as d:
        jpath = os.path.join(d, "bench.json")
        cmd = [a.losskit, "--backend", "cpu", "bench", "--loss", "cross_entropy",
               "--shapes", ",".join(f"{n}x{v}" for n, v in shapes),
               "--reps", str(a.reps), "--json", jpath]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        with open(jpath) as f:
            lk = json.load(f)
    rows = {(r["shape"]): r for r in lk["rows"] if r["loss"] == "cross_entropy"}

    rng = np.random.default_rng(0)
    print(f"\njax {jax.__version__} ({jax.default_backend()}), "
          f"{'torch ' + __import__('torch').__version__ if have_torch else 'no torch'}, "
          f"{os.cpu_count()} CPUs; best / median of {a.reps} ms")
    head = f"{'shape':>12} {'losskit':>16} {'of roof':>8} {'jax':>18} {'jax/losskit':>12}"
    if have_torch:
        head += f" {'torch':>18} {'torch/losskit':>14}"
    print(head)
    for n, v in shapes:
        key = f"{n}x{v}"
        r = rows.get(key)
        if r is None:
            print(f"{key:>12}  (losskit skipped this shape)")
            continue
        jb, jm, _ = bench_jax(n, v, a.reps, rng)
        line = (f"{key:>12} {r['best_ms']:7.1f} /{r['median_ms']:7.1f} {100 * r['ratio_to_roof']:7.0f}% "
                f"{jb:8.1f} /{jm:8.1f} {jb / r['best_ms']:11.1f}x")
        if have_torch:
            tb, tm = bench_torch(n, v, a.reps, rng)
            line += f" {tb:8.1f} /{tm:8.1f} {tb / r['best_ms']:13.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
