#!/usr/bin/env python3
"""PyTorch-on-CUDA reference timings for the figures `cargo bench --bench gpu` prints, to be run
on the same GPU in the same session so the two can be compared as ratios.

Requirements (this script installs nothing): torch with CUDA.

Usage:
    python benches/compare_torch_cuda.py [--reps 10] [--json out.json]

What is timed (f32 everywhere, mean over rows, forward + backward, CUDA events around
`reps` calls after 3 warm-ups, best and median per call):
  * copy: a device-to-device copy of a buffer as large as the CE logits (the bandwidth roof,
    counting bytes read + written);
  * cross_entropy N x C: F.cross_entropy(x, y).backward(), x.grad reset each call;
  * token_logprobs N x T x V: log_softmax, gather of the target token, per-token entropy
    -sum p log p, sequence sums; backward of (sum of log-probs + sum of entropies);
  * linear_ce N x D x V (cut_cross_entropy's problem): logits = E @ C.T, then
    F.cross_entropy, backward to E and C (the dense path, materialising N x V logits),
    with peak extra memory from torch.cuda.max_memory_allocated; and
    torch.nn.functional.linear_cross_entropy when this torch has it.
"""

import argparse
import json

import torch
import torch.nn.functional as F


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[0], ts[len(ts) // 2]


def peak_extra(fn):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    rows = []

    def report(name, shape, best, med, extra=""):
        print(f"{name:<22} {shape:<22} best {best:9.3f} ms  median {med:9.3f} ms  {extra}")
        rows.append({"case": name, "shape": shape, "best_ms": best, "median_ms": med, "extra": extra})

    for n, c in [(4096, 32000), (8192, 128256)]:
        x = torch.randn(n, c, device=dev, generator=g).requires_grad_()
        y = torch.randint(0, c, (n,), device=dev, generator=g)
        src = torch.empty(n * c, device=dev)
        dst = torch.empty_like(src)
        best, med = timed(lambda: dst.copy_(src), a.reps)
        gbs = 2 * src.numel() * 4 / best / 1e6
        report("copy", f"{n}x{c}", best, med, f"{gbs:.0f} GB/s (read+write)")

        def ce():
            x.grad = None
            F.cross_entropy(x, y).backward()

        best, med = timed(ce, a.reps)
        moved = 2 * n * c * 4
        report("cross_entropy", f"N={n},C={c}", best, med, f"{moved / best / 1e6:.0f} GB/s (logits read + grad written)")
        del x, src, dst

    n, t, v = 8, 512, 32000
    z = torch.randn(n, t, v, device=dev, generator=g).requires_grad_()
    tgt = torch.randint(0, v, (n, t), device=dev, generator=g)

    def tlp():
        z.grad = None
        lp = F.log_softmax(z, dim=-1)
        tok = lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        ent = -(lp.exp() * lp).sum(-1)
        (tok.sum(-1).mean() + ent.mean()).backward()

    best, med = timed(tlp, a.reps)
    report("token_logprobs", f"N={n},T={t},V={v}", best, med)
    del z

    for n, d, v in [(2048, 2048, 32000), (8192, 2048, 128256)]:
        e = (torch.randn(n, d, device=dev, generator=g) * 0.05).requires_grad_()
        w = (torch.randn(v, d, device=dev, generator=g) * 0.05).requires_grad_()
        y = torch.randint(0, v, (n,), device=dev, generator=g)

        def dense():
            e.grad = None
            w.grad = None
            F.cross_entropy(e @ w.T, y).backward()

        best, med = timed(dense, a.reps)
        tf = 6 * n * d * v / best / 1e9
        mem = peak_extra(dense) / 2**20
        report("linear_ce dense", f"N={n},D={d},V={v}", best, med, f"{tf:.1f} TFLOP/s, peak extra {mem:.0f} MiB")
        for tf32 in [True]:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            best, med = timed(dense, a.reps)
            tfl = 6 * n * d * v / best / 1e9
            report("linear_ce dense tf32", f"N={n},D={d},V={v}", best, med, f"{tfl:.1f} TFLOP/s")
            torch.backends.cuda.matmul.allow_tf32 = False
        lce = getattr(F, "linear_cross_entropy", None)
        if lce is not None:
            def fused():
                e.grad = None
                w.grad = None
                lce(e, w, y).backward()

            try:
                best, med = timed(fused, a.reps)
                mem = peak_extra(fused) / 2**20
                report("F.linear_cross_entropy", f"N={n},D={d},V={v}", best, med, f"{6 * n * d * v / best / 1e9:.1f} TFLOP/s, peak extra {mem:.0f} MiB")
            except Exception as ex:  # noqa: BLE001 - report and go on
                print(f"F.linear_cross_entropy failed: {ex}")
        else:
            print("torch.nn.functional.linear_cross_entropy: not in this torch")
        del e, w
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
