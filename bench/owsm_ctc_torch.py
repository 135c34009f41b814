#!/usr/bin/python3
"""OWSM-CTC benchmark: Cochlea against the PyTorch reference on one 30 s window.

    owsm_ctc_torch.py bench --cochlea EXE --ckpt DIR --gguf-f32 F --gguf-q8 F --work DIR
                            [--geometry NAME] [--reps 3] [--threads 2] [--settle 20] [--no-torch]
    owsm_ctc_torch.py torch --ckpt DIR --work DIR --dtype f32|bf16 [--reps 3] [--threads 2] [--settle 20]

`bench` (what bench/owsm_ctc runs) drives everything, each measured side in its own process:
  1. `torch --dtype f32` (a child process): loads the reference (tests/ref/owsm_ctc.py), makes
     a deterministic synthetic 30 s waveform, writes its normalised features (WORK/feats.npy,
     (3001, n_mels) float32) and the reference's per-position argmax and top-2 logit margin,
     then times N runs of prompt encoder + encoder + CTC head after a warm-up run;
  2. `torch --dtype bf16`: the same model with the encoder, prompt encoder, embeddings and CTC
     head cast with .bfloat16() (torch.autocast fails on this model in torch 1.13), same
     features cast to bf16, same timing;
  3. `cochlea transcribe --features WORK/feats.npy -t THREADS` for each Cochlea path: one run
     that writes the log-posteriors (argmax, margins; for F32 also checks that the GGUF is
     mmap'ed by reading /proc/PID/maps while it runs), then N timed processes under
     /usr/bin/time (peak RSS), each running the window twice (`--repeat 2`) and reporting each
     run's time (loading excluded): the second is the warm time compared with PyTorch's, the first
     the cold one.
Every timed run first waits up to --settle seconds until other processes keep less than 0.25
CPUs busy, and records how many CPUs they kept busy during the run (/proc/stat).
Prints a Markdown table (median seconds, speed-up over PyTorch F32, peak RSS, other jobs'
CPUs, argmax agreement) and the checks; exits 1 when a check fails. The language is <nolang>, the task
<asr> and the prompt <na> on both sides (the CLI's defaults).
"""

import argparse
import ctypes
import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(SRC, "tests", "ref"))

MARGIN = 0.1        # a frame is "confident" when its F32 top-2 logit margin is at least this
FAST_MIN = 0.995    # fast paths must agree with F32 on at least this share of confident frames
COCHLEA_PATHS = [   # (label, GGUF key, --precision)
    ("Cochlea F32", "f32", "f32"),
    ("Cochlea BF16", "f32", "bf16"),
    ("Cochlea INT8", "f32", "int8"),
    ("Cochlea Q8_0 GGUF, F32", "q8", "f32"),
    ("Cochlea Q8_0 GGUF, BF16", "q8", "bf16"),
]


# ============================================================================================
# Input
# ============================================================================================

def synthetic_speech(seconds=30.0, fs=16000, seed=20240):
    """A deterministic speech-like waveform: voiced 'syllables' of 120-320 ms (harmonics of a
    gliding f0 of 90-240 Hz, shaped by two moving formant peaks), short pauses, and a noise
    floor about 45 dB down. Float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    x = np.zeros(n)
    pos = int(0.2 * fs)
    while pos < n:
        dur = int(rng.uniform(0.12, 0.32) * fs)
        dur = min(dur, n - pos)
        t = np.arange(dur) / fs
        f0 = rng.uniform(90, 240) * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3))
        ph = 2 * np.pi * np.cumsum(f0) / fs
        f1a, f1b = rng.uniform(300, 900, 2)
        f2a, f2b = rng.uniform(900, 2600, 2)
        f1 = f1a + (f1b - f1a) * t / max(t[-1], 1e-3)
        f2 = f2a + (f2b - f2a) * t / max(t[-1], 1e-3)
        y = np.zeros(dur)
        for k in range(1, 40):
            fk = k * f0
            amp = (np.exp(-((fk - f1) / 120.0) ** 2) + 0.6 * np.exp(-((fk - f2) / 180.0) ** 2) + 0.02) / k ** 0.5
            amp[fk > fs / 2 - 200] = 0
            y += amp * np.sin(k * ph)
        env = np.sin(np.pi * np.arange(dur) / dur) ** 0.5
        x[pos:pos + dur] += 0.25 * y * env * rng.uniform(0.3, 1.0)
        pos += dur + int(rng.choice([0.02, 0.05, 0.1, 0.4]) * fs)
    x += 0.003 * rng.standard_normal(n)
    return np.clip(x, -1, 1).astype(np.float32)


def top2(logits):
    """Per-position argmax and top-1 minus top-2 value of a (T, V) array."""
    logits = np.asarray(logits, dtype=np.float32)
    am = np.argmax(logits, axis=1)
    part = np.partition(logits, -2, axis=1)[:, -2:]
    return am.astype(np.int64), (part[:, 1] - part[:, 0]).astype(np.float32)


# ============================================================================================
# PyTorch worker (one dtype per process, so peak RSS is per dtype)
# ============================================================================================

def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def cpu_busy_s():
    """CPU-seconds the whole machine has spent busy (all CPUs; /proc/stat, not idle/iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_s, limit=0.25):
    """Wait until other processes keep less than `limit` CPUs busy over half a second, for at
    most max_s seconds (our own process's CPU time is not counted; no child may be running)."""
    end = time.monotonic() + max_s
    while True:
        b, c = cpu_busy_s(), time.process_time()
        time.sleep(0.5)
        other = (cpu_busy_s() - b - (time.process_time() - c)) / 0.5
        if other < limit or time.monotonic() >= end:
            return other


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False when not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cmd_torch(a):
    import torch
    import owsm_ctc as ref

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model, hp, sp = ref.load_model(a.ckpt)
    load_s = time.perf_counter() - t0
    os.makedirs(a.work, exist_ok=True)
    feats_path = os.path.join(a.work, "feats.npy")
    if a.dtype == "f32":
        wav = synthetic_speech(hp.speech_length, hp.fs)
        with torch.no_grad():
            feats = model.features(torch.from_numpy(wav)[None])[0].numpy()
        np.save(feats_path, feats.astype(np.float32))
    feats = np.load(feats_path)
    x = torch.from_numpy(feats)[None]
    dtype = torch.float32
    if a.dtype == "bf16":
        dtype = torch.bfloat16
        for name in ("encoder", "prompt_encoder", "embed", "embed_proj", "prompt_proj", "ctc"):
            getattr(model, name).bfloat16()
        x = x.bfloat16()
    pids = ref.prompt_ids(hp, sp, None)
    prefix = torch.tensor([[ref.token_id(hp, "nolang", "language"), ref.token_id(hp, "asr", "task")]])
    gc.collect()
    try:  # give freed fp32 weights back to the system before measuring the steady state
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    rss_after_load = _status_kb("VmRSS")
    rss_load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the reset clears it
    reset_ok = _reset_peak_rss()

    def forward():
        enc, _ = model.encode(x, [pids], prefix)
        return model.ctc.ctc_lo(enc)[0]

    times, others = [], []
    with torch.inference_mode():
        lg = forward()  # warm-up, and the outputs
        for _ in range(a.reps):
            wait_quiet(a.settle)
            b, c, t = cpu_busy_s(), time.process_time(), time.perf_counter()
            forward()
            times.append(time.perf_counter() - t)
            others.append(max(0.0, cpu_busy_s() - b - (time.process_time() - c)) / times[-1])
    am, margin = top2(lg.float().numpy())
    np.save(os.path.join(a.work, f"torch_{a.dtype}_argmax.npy"), am)
    np.save(os.path.join(a.work, f"torch_{a.dtype}_margin.npy"), margin)
    out = {
        "dtype": a.dtype, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "param_dtype": str(next(model.encoder.parameters()).dtype).replace("torch.", ""),
        "compute_dtype": str(dtype).replace("torch.", ""),
        "load_s": load_s, "times": times, "median": statistics.median(times), "others": others,
        "frames": int(feats.shape[0]), "positions": int(am.shape[0]),
        "rss_after_load_kb": rss_after_load,
        "rss_run_peak_kb": _status_kb("VmHWM") if reset_ok else None,
        "rss_process_peak_kb": max(rss_load_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }
    print(json.dumps(out))
    return 0


# ============================================================================================
# Driver
# ============================================================================================

TIME_RE = re.compile(r"([0-9.]+) s of audio in ([0-9.]+) s")
RUN_RE = re.compile(r"run (\d+): ([0-9.]+) s")
LOAD_RE = re.compile(r"load ([0-9.]+) s")


def run_torch(a, dtype):
    cmd = [sys.executable, os.path.abspath(__file__), "torch", "--ckpt", a.ckpt, "--work", a.work,
           "--dtype", dtype, "--reps", str(a.reps), "--threads", str(a.threads), "--settle", str(a.settle)]
    print(f"owsm_ctc: PyTorch {dtype}: {' '.join(cmd[1:])}", file=sys.stderr)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"owsm_ctc: the PyTorch {dtype} run failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def gguf_mapped(pid, path):
    """True when `path` is mapped into process `pid` (a line of /proc/PID/maps names it)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any(line.rstrip("\n").endswith(" " + path) for line in f)
    except OSError:
        return False


def cochlea_outputs(a, gguf, prec, check_mmap):
    """One untimed run that writes the log-posteriors; returns (argmax, margin, mmap seen, error)."""
    post = os.path.join(a.work, "post.npy")
    cmd = [a.cochlea, "transcribe", "-m", gguf, "--precision", prec, "-t", str(a.threads),
           "--features", os.path.join(a.work, "feats.npy"), "--output-posteriors", post]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    real = os.path.realpath(gguf)
    seen = False
    while check_mmap and p.poll() is None and not seen:
        seen = gguf_mapped(p.pid, real)
        time.sleep(0.02)
    err = p.communicate()[1]
    if p.returncode != 0:
        return None, None, seen, err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}"
    lp = np.load(post, mmap_mode="r")
    am, margin = top2(lp[0])
    del lp
    os.remove(post)
    return am, margin, seen, None


def cochlea_timed(a, gguf, prec):
    """N processes, each running the window twice on the loaded model (`--repeat 2`): the second
    run is the warm time (as PyTorch's, after its warm-up), the first the cold one (first touch of
    the mapped weights and of the buffers, primitive creation); /usr/bin/time's peak RSS (else the
    rise of RUSAGE_CHILDREN's maximum), and the CPUs that other jobs kept busy meanwhile."""
    tbin = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    times, cold, rss, others, loads = [], [], [], [], []
    rss_file = os.path.join(a.work, "rss.txt")
    for _ in range(a.reps):
        cmd = [a.cochlea, "transcribe", "-m", gguf, "--precision", prec, "-t", str(a.threads),
               "--features", os.path.join(a.work, "feats.npy"), "--repeat", "2"]
        if tbin:
            cmd = [tbin, "-f", "%M", "-o", rss_file] + cmd
        wait_quiet(a.settle)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b, t = cpu_busy_s(), time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall, busy = time.perf_counter() - t, cpu_busy_s() - b
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs = {int(k): float(v) for k, v in RUN_RE.findall(r.stderr)}
        if r.returncode != 0 or 1 not in runs or 2 not in runs:
            raise SystemExit(f"owsm_ctc: {' '.join(cmd)} failed:\n{r.stderr}")
        cold.append(runs[1])
        times.append(runs[2])
        lm = LOAD_RE.search(r.stderr)
        if lm:
            loads.append(float(lm.group(1)))
        own = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
        others.append(max(0.0, busy - own) / wall)
        if tbin:
            with open(rss_file) as f:
                rss.append(int(f.read().split()[-1]))
        elif ru1.ru_maxrss > ru0.ru_maxrss:  # a maximum over all children: only a rise is ours
            rss.append(ru1.ru_maxrss)
    return times, cold, rss, others, loads


def agree(x, ref, mask=None):
    """(equal, counted) positions; mask selects the counted ones."""
    eq = np.asarray(x) == np.asarray(ref)
    if mask is not None:
        eq = eq[mask]
    return int(eq.sum()), int(eq.size)


def fmt_agree(p):
    if p is None:
        return "-"
    e, n = p
    return f"{100.0 * e / n:.2f} % ({e}/{n})" if n else "n/a"


def cmd_bench(a):
    os.makedirs(a.work, exist_ok=True)
    a.cochlea = os.path.abspath(a.cochlea)
    load0 = os.getloadavg()
    rows, checks = [], []
    tf = tb = None
    if not a.no_torch:
        tf = run_torch(a, "f32")
        tb = run_torch(a, "bf16")
    elif not os.path.exists(os.path.join(a.work, "torch_f32_argmax.npy")):
        raise SystemExit(f"owsm_ctc: --no-torch needs the reference outputs of an earlier run in {a.work}")
    t_am = np.load(os.path.join(a.work, "torch_f32_argmax.npy"))
    t_mg = np.load(os.path.join(a.work, "torch_f32_margin.npy"))
    t_conf = t_mg >= MARGIN
    if tf:
        rows.append({"path": "PyTorch F32", "median": tf["median"], "times": tf["times"],
                     "rss": tf["rss_run_peak_kb"] or tf["rss_process_peak_kb"], "others": tf["others"],
                     "load": tf["load_s"], "vs_c": None, "vs_t": None})
    if tb:
        b_am = np.load(os.path.join(a.work, "torch_bf16_argmax.npy"))
        rows.append({"path": "PyTorch BF16", "median": tb["median"], "times": tb["times"],
                     "rss": tb["rss_run_peak_kb"] or tb["rss_process_peak_kb"], "others": tb["others"],
                     "load": tb["load_s"], "vs_c": None, "vs_t": agree(b_am, t_am, t_conf)})

    c_am = c_conf = None
    ggufs = {"f32": a.gguf_f32, "q8": a.gguf_q8}
    for label, g, prec in COCHLEA_PATHS:
        print(f"owsm_ctc: {label}", file=sys.stderr)
        is_ref = label == "Cochlea F32"
        am, margin, seen, err = cochlea_outputs(a, ggufs[g], prec, check_mmap=is_ref)
        if err:
            rows.append({"path": label, "error": err})
            if is_ref:
                checks.append(("Cochlea F32 runs", False, err))
            continue
        times, cold, rss, others, loads = cochlea_timed(a, ggufs[g], prec)
        row = {"path": label, "median": statistics.median(times), "times": times, "others": others,
               "cold": statistics.median(cold),
               "load": statistics.median(loads) if loads else None,
               "rss": int(statistics.median(rss)) if rss else None}
        if is_ref:
            c_am, c_conf = am, margin >= MARGIN
            row["vs_c"] = None
            row["vs_t"] = agree(am, t_am)
            e, n = row["vs_t"]
            checks.append(("Cochlea F32 argmax == PyTorch F32 argmax on all frames", e == n, f"{e}/{n}"))
            checks.append(("the F32 GGUF is mmap'ed (/proc/PID/maps)", seen, os.path.basename(ggufs[g])))
        else:
            row["vs_c"] = agree(am, c_am, c_conf) if c_am is not None else None
            row["vs_t"] = agree(am, t_am, t_conf)
            if row["vs_c"]:
                e, n = row["vs_c"]
                checks.append((f"{label} >= {100 * FAST_MIN:.1f} % of confident frames equal to Cochlea F32",
                               n > 0 and e >= FAST_MIN * n, f"{100.0 * e / max(n, 1):.2f} %"))
        rows.append(row)

    load1 = os.getloadavg()
    base = tf["median"] if tf else None
    geom = a.geometry or os.path.basename(a.ckpt)
    print()
    print(f"OWSM-CTC {geom}, one 30 s window ({len(t_am)} positions), {a.threads} threads, "
          f"median of {a.reps} runs; load average {load0[0]:.1f} before, {load1[0]:.1f} after")
    if tf:
        print(f"PyTorch {tf['torch']}; RSS of PyTorch = peak during the timed runs (model loaded); "
              f"whole process incl. torch.load: F32 {tf['rss_process_peak_kb'] / 1048576:.2f} GiB, "
              f"BF16 {tb['rss_process_peak_kb'] / 1048576:.2f} GiB")
    print(f"agreement = equal argmax per position; 'vs C F32' and the fast paths' 'vs PyTorch F32' count "
          f"only positions whose F32 top-2 logit margin is >= {MARGIN} "
          f"(C F32: {int(c_conf.sum()) if c_conf is not None else 0}, "
          f"PyTorch F32: {int(t_conf.sum())} of {len(t_am)}); Cochlea F32 vs PyTorch F32 counts all")
    print("load s = model loading, not timed: the CLI's 'load' (GGUF open + recognizer creation, weight "
          "packing included); PyTorch: tests/ref load_model (torch.load + load_state_dict), before any cast")
    print(f"other jobs = CPUs kept busy by other processes during the timed runs (median; /proc/stat busy time "
          f"minus our own CPU time, per second; this machine has {os.cpu_count()}): above 0.2 the row is disturbed")
    print()
    print("median s / runs s = warm runs (PyTorch: after a warm-up run; Cochlea: the second of two runs "
          "in one process); cold s = Cochlea's first run in a fresh process (median)")
    print()
    print("| path | median s | runs s | x vs PyTorch F32 | cold s | load s | peak RSS GiB | other jobs (CPUs) | "
          "argmax vs C F32 | argmax vs PyTorch F32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['path']} | failed: {r['error']} | | | | | | | | |")
            continue
        speed = f"{base / r['median']:.2f}" if base else "n/a"
        rss = f"{r['rss'] / 1048576:.2f}" if r.get("rss") else "n/a"
        runs = " ".join(f"{t:.2f}" for t in r["times"])
        oth = f"{statistics.median(r['others']):.1f}"
        load = f"{r['load']:.2f}" if r.get("load") is not None else "n/a"
        cold = f"{r['cold']:.2f}" if r.get("cold") is not None else "-"
        print(f"| {r['path']} | {r['median']:.2f} | {runs} | {speed} | {cold} | {load} | {rss} | {oth} | "
              f"{fmt_agree(r['vs_c'])} | {fmt_agree(r['vs_t'])} |")
    print()
    ok = True
    for name, passed, detail in checks:
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'}: {name} ({detail})")
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump({"geometry": geom, "threads": a.threads, "reps": a.reps, "load": [load0, load1],
                   "torch": [tf, tb], "rows": [{k: v for k, v in r.items()} for r in rows],
                   "checks": checks}, f, indent=1)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--cochlea", required=True)
    b.add_argument("--ckpt", required=True)
    b.add_argument("--gguf-f32", required=True)
    b.add_argument("--gguf-q8", required=True)
    b.add_argument("--work", required=True)
    b.add_argument("--geometry")
    b.add_argument("--no-torch", action="store_true",
                   help="Cochlea only, against the reference outputs of an earlier run in --work")
    t = sub.add_parser("torch")
    t.add_argument("--ckpt", required=True)
    t.add_argument("--work", required=True)
    t.add_argument("--dtype", choices=["f32", "bf16"], required=True)
    for p in (b, t):
        p.add_argument("--reps", type=int, default=3)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--settle", type=float, default=20.0,
                       help="before each timed run, wait up to this many seconds for other jobs to "
                            "leave the CPUs (less than 0.25 CPUs busy)")
    a = ap.parse_args()
    if a.reps < 1:
        ap.error("--reps must be at least 1")
    return cmd_bench(a) if a.cmd == "bench" else cmd_torch(a)


if __name__ == "__main__":
    sys.exit(main())
