#!/usr/bin/python3
"""PyTorch side of bench/gemm: torch.matmul GFLOP/s on the same shapes as bench/gemm_bench.

y = x @ w.T with x [M, K] and w [N, K] (a Linear layer's weight layout), in fp32 and in bf16
(inputs converted once before timing; torch's bf16 matmul returns bf16). Prints the same
tab-separated lines as gemm_bench: shape, M, K, N, threads, impl, median_ms, gflops.
The shapes come from `gemm_bench --list` (a file given with --shapes) so both sides agree.
"""
import argparse
import statistics
import sys
import time


def time_median(fn, reps, budget):
    """Median of reps timed runs after a warm-up of at least 3 runs and 0.3 s (as gemm_bench)."""
    t0 = time.perf_counter()
    first, i = 0.0, 0
    while i < 3 or time.perf_counter() - t0 < 0.3:
        a = time.perf_counter()
        fn()
        first = time.perf_counter() - a
        i += 1
        if time.perf_counter() - t0 > budget:
            break
    if first * reps > budget:
        reps = int(budget / max(first, 1e-9))
    reps = max(reps, 3)
    times = []
    for _ in range(reps):
        a = time.perf_counter()
        fn()
        times.append(time.perf_counter() - a)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", required=True, help="output of gemm_bench --list")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--budget", type=float, default=4.0)
    ap.add_argument("--shape", action="append", default=[], help="only these shape names")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("gemm_torch.py: torch not importable with %s; skipping PyTorch" % sys.executable, file=sys.stderr)
        return 0
    print("gemm_torch.py: torch %s, %s" % (torch.__version__, torch.__config__.parallel_info().splitlines()[0]),
          file=sys.stderr)
    shapes = []
    with open(args.shapes) as f:
        for line in f:
            name, m, k, n = line.rstrip("\n").split("\t")
            if not args.shape or name in args.shape:
                shapes.append((name, int(m), int(k), int(n)))
    threads = [int(t) for t in args.threads.split(",") if t]
    torch.manual_seed(0)
    for name, m, k, n in shapes:
        x = torch.rand(m, k) * 2 - 1
        w = (torch.rand(n, k) * 2 - 1) * 0.05
        xb, wb = x.bfloat16(), w.bfloat16()
        flops = 2.0 * m * k * n
        for t in threads:
            torch.set_num_threads(t)
            for impl, a, b in (("torch-f32", x, w), ("torch-bf16", xb, wb)):
                with torch.no_grad():
                    sec = time_median(lambda: torch.matmul(a, b.t()), args.reps, args.budget)
                print("%s\t%d\t%d\t%d\t%d\t%s\t%.4f\t%.1f" % (name, m, k, n, t, impl, sec * 1e3, flops / sec * 1e-9))
                sys.stdout.flush()
        del x, w, xb, wb
    return 0


if __name__ == "__main__":
    sys.exit(main())
