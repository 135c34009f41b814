#!/usr/bin/env python3
"""train.py - stage 3 of recipes/textlm_tiny: train a llama model (local/model.py, the
computation of tests/ref/llama.py) on the token stream of stage 2.

Batches are random windows of ctx + 1 tokens from the training stream (documents are
[BOS] ... [EOS], packed); the window offsets of step s come from a generator seeded with
(seed, s), so a resumed run sees exactly the batches an uninterrupted one would. AdamW
(betas 0.9/0.95, weight decay on matrices only), linear warm-up then cosine decay to
min-lr over max-steps, gradient clipping at 1. Every ckpt-every steps (and at the end or when
max-minutes is reached) EXP/checkpoint.pt is written (model, optimiser, step, elapsed time) and
a rerun resumes from it ("resumed at step N"). At the end EXP/model.pt holds the float32
state dict (tests/ref/llama.py names) and EXP/config.json the Config; EXP/log.tsv has
step, lr, train loss, valid loss, seconds.

    train.py --tok TOK --exp EXP [--preset target|draft|smoke|smoke-draft] [--d ... overrides]
             [--batch 16 --lr 1e-3 --max-steps N --stop-after N --max-minutes M --device cpu|cuda --threads T]
"""
import argparse
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402


def get_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tok", required=True, help="stage 2 output (spm.model, train.npy, valid.npy)")
    ap.add_argument("--exp", required=True)
    ap.add_argument("--preset", default="target", choices=sorted(M.PRESETS))
    for k in ("d", "layers", "heads", "kv-heads", "ff", "ctx"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=6000)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop this run (checkpointed) after M minutes")
    ap.add_argument("--stop-after", type=int, default=0, help="stop this run (checkpointed) after N steps")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--valid-every", type=int, default=200)
    ap.add_argument("--valid-batches", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--time-steps", type=int, default=0,
                    help="timing run: train this many steps from scratch, print s/step, write nothing")
    return ap.parse_args()


def make_config(a, vocab):
    p = dict(M.PRESETS[a.preset])
    for k in ("d", "layers", "heads", "kv_heads", "ff", "ctx"):
        v = getattr(a, k)
        if v is not None:
            p[k] = v
    if a.untied:
        p["tied"] = False
    cfg = M.Config(vocab=vocab, **p)
    if cfg.d % cfg.heads or cfg.heads % cfg.kv_heads or cfg.head_dim % 2:
        sys.exit("train.py: d must divide into heads, heads into kv-heads, and the head size must be even")
    return cfg


def batch_at(data, step, seed, B, T, salt=0):
    rng = np.random.default_rng([seed, salt, step])
    off = rng.integers(0, data.size - T - 1, size=B)
    x = np.stack([data[o:o + T + 1] for o in off]).astype(np.int64)
    return torch.from_numpy(x)


def lr_at(a, step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = min(1.0, (step - a.warmup) / max(1, a.max_steps - a.warmup))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def valid_loss(model, data, a, cfg, dev):
    model.eval()
    tot, n = 0.0, 0
    T = min(cfg.ctx, data.size - 2)
    for i in range(a.valid_batches):
        x = batch_at(data, i, a.seed, min(a.batch, 8), T, salt=1).to(dev)
        logits = model(x[:, :-1])
        tot += float(torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab), x[:, 1:].reshape(-1),
                                                       reduction="sum"))
        n += x[:, 1:].numel()
    model.train()
    return tot / n


def main():
    a = get_args()
    torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("train.py: --device cuda but torch sees no CUDA device")
    dev = torch.device(a.device)
    stats = json.load(open(os.path.join(a.tok, "stats.json")))
    train = np.load(os.path.join(a.tok, "train.npy"))
    valid = np.load(os.path.join(a.tok, "valid.npy"))
    cfg = make_config(a, stats["vocab"])
    torch.manual_seed(a.seed)
    model = M.Llama(cfg).to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    T = cfg.ctx
    if train.size < T + 2:
        sys.exit("train.py: the training stream (%d tokens) is shorter than one window" % train.size)
    print("train.py: %s %s, %d parameters, %d training tokens, batch %d x %d, %s x %d threads" %
          (a.preset, cfg, M.n_params(model), train.size, a.batch, T, a.device, a.threads), file=sys.stderr, flush=True)

    if a.time_steps:  # timing only: one warm-up step, then the mean of time_steps steps
        for s in range(a.time_steps + 1):
            if s == 1:
                t0, c0 = time.time(), time.process_time()
            x = batch_at(train, s, a.seed, a.batch, T).to(dev)
            loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).reshape(-1, cfg.vocab), x[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        wall, cpu = (time.time() - t0) / a.time_steps, (time.process_time() - c0) / a.time_steps
        print("timing: %d parameters, batch %d x %d: %.3f s/step wall, %.3f CPU-s/step, %.0f tokens/s wall" %
              (M.n_params(model), a.batch, T, wall, cpu, a.batch * T / wall))
        return

    os.makedirs(a.exp, exist_ok=True)
    ck_path = os.path.join(a.exp, "checkpoint.pt")
    step, elapsed = 0, 0.0
    if os.path.exists(ck_path):
        ck = torch.load(ck_path, map_location=dev)
        if ck["config"] != dataclasses.asdict(cfg):
            sys.exit("train.py: %s was trained with another configuration (%s)" % (ck_path, ck["config"]))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        print("train.py: resumed at step %d (%.1f min trained)" % (step, elapsed / 60), file=sys.stderr, flush=True)
    json.dump(dataclasses.asdict(cfg), open(os.path.join(a.exp, "config.json"), "w"), indent=1)

    def save():
        tmp = ck_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "config": dataclasses.asdict(cfg), "args": vars(a)}, tmp)
        os.replace(tmp, ck_path)

    log = open(os.path.join(a.exp, "log.tsv"), "a")
    if os.path.getsize(log.name) == 0:
        log.write("step\tlr\ttrain_loss\tvalid_loss\tseconds\n")
    t_run, t_last, run_loss, n_loss, step0 = time.time(), time.time(), 0.0, 0, step
    model.train()
    while step < a.max_steps:
        if a.max_minutes and time.time() - t_run > 60 * a.max_minutes:
            print("train.py: --max-minutes reached at step %d" % step, file=sys.stderr)
            break
        if a.stop_after and step - step0 >= a.stop_after:
            print("train.py: --stop-after reached at step %d" % step, file=sys.stderr)
            break
        lr = lr_at(a, step)
        for g in opt.param_groups:
            g["lr"] = lr
        x = batch_at(train, step, a.seed, a.batch, T).to(dev)
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).reshape(-1, cfg.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        run_loss += float(loss)
        n_loss += 1
        vl = ""
        if step % a.valid_every == 0 or step == a.max_steps:
            vl = "%.4f" % valid_loss(model, valid, a, cfg, dev)
        if step % a.log_every == 0 or vl:
            print("step %d lr %.2e loss %.4f%s %.2f s/step" % (step, lr, run_loss / n_loss, " valid " + vl if vl else "",
                                                              elapsed / step if step else 0), file=sys.stderr, flush=True)
            log.write("%d\t%.3e\t%.4f\t%s\t%.1f\n" % (step, lr, run_loss / n_loss, vl, elapsed))
            log.flush()
            run_loss, n_loss = 0.0, 0
        if step % a.ckpt_every == 0:
            save()
    save()
    if step >= a.max_steps:
        sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        torch.save(sd, os.path.join(a.exp, "model.pt"))
        with open(os.path.join(a.exp, "done.json"), "w") as f:
            json.dump({"step": step, "minutes": elapsed / 60, "params": M.n_params(model),
                       "tokens_seen": step * a.batch * T, "batch": a.batch, "ctx": T}, f, indent=1)
        print("train.py: finished %d steps in %.1f min" % (step, elapsed / 60), file=sys.stderr)


if __name__ == "__main__":
    main()
