#!/usr/bin/env python3
"""Stage 4 of the owsm_ctc_tiny recipe: train the OWSM-CTC reference model (tests/ref/owsm_ctc.py).

    train.py --train DIR --dev DIR --tok DIR --exp DIR [size and schedule options]

What OWSM-CTC training does, scaled down (../shared/docs/owsm-ctc.md sections 1, 4.x, 5.4):
  - every sample is one utterance placed in a fixed window of --window seconds (the model's
    speech_length, so inference pads to exactly what training saw), after a random amount of
    leading silence; the rest of the window is digital silence;
  - prefix <lang><task>: the true language with probability 1 - --nolang-prob, else <nolang>;
    the task is <asr>, or <st_xxx> with probability --st-prob when the utterance has a
    translation into a language that is an OWSM translation target;
  - prompt: always <na> (there is no previous text in this data);
  - CTC targets: the final layer learns <lang><task> + the task's target text, the inter-CTC
    layers (self-conditioned) learn <lang><task> + the transcript (ctc_asr_only); the language
    token is always the true one, which is how the model learns language identification;
  - loss = (1 - w) * CTC_final + w * mean(CTC_inter), w = --interctc-weight;
  - SpecAugment (two frequency and two time masks) on the normalised features.
Adam with linear warm-up and cosine decay to --max-steps. A checkpoint (model, optimiser, step,
random states) is written every --ckpt-every steps and at the end; rerunning the same command
resumes from it. --max-minutes stops early (still checkpointed) so long runs can be split
across sessions. Every --valid-every steps the dev set is decoded greedily (CER with the true
language, language-ID accuracy with <nolang>); the best model by dev CER is exp/best.pth.
"""
import argparse
import json
import math
import os
import random
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "ref"))
sys.path.insert(0, HERE)
from text import cap_per_language  # noqa: E402  (stage 1b caps its text the same way)
import owsm_ctc as ref  # noqa: E402
from score import edit_distance  # noqa: E402  (the recipe's scorer, checked against sclite)

SILENCE = math.log(1e-10)  # log-mel of digital silence


def _layer_norm_fp32(self, x):
    """LayerNorm in float32 whatever the input: under bfloat16 autocast this PyTorch (1.13) feeds
    bf16 activations to LayerNorm with fp32 weights and fails; for fp32 input it is unchanged."""
    return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps)


ref.LayerNorm.forward = _layer_norm_fp32


def log(exp, msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    with open(os.path.join(exp, "train.log"), "a", encoding="utf-8") as f:
        f.write(line + "\n")


def load_split(d, src=0):
    """index.jsonl and feats.npy of one synth.py output directory; every record gets "src", the
    position of its feats array in the list that Batcher is given."""
    idx = [json.loads(l) for l in open(os.path.join(d, "index.jsonl"), encoding="utf-8")]
    for m in idx:
        m["src"] = src
    feats = np.load(os.path.join(d, "feats.npy"), mmap_mode="r")
    return idx, feats


def save_atomic(obj, path):
    """torch.save through a temporary file, so that an interrupted run never leaves half a file."""
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def parse_lang_weights(spec):
    """"eng:1.5,fra:2" -> {"eng": 1.5, "fra": 2.0} (train.py --lang-weight)."""
    out = {}
    for part in filter(None, spec.split(",")):
        lang, sep, w = part.partition(":")
        try:
            v = float(w)
        except ValueError:
            v = -1.0
        if not sep or not lang or not (0.0 <= v <= 100.0):
            raise argparse.ArgumentTypeError(f"{part!r} is not LANG:WEIGHT with a weight in [0, 100]")
        out[lang] = v
    return out


def per_language(idx, n):
    """The first n records of each language, languages in sorted order (validation subsets)."""
    by = {}
    for m in idx:
        by.setdefault(m["lang"], []).append(m)
    return [m for l in sorted(by) for m in by[l][:n]]


# the output layers of an E-Branchformer layer's residual branches: zero, the branch adds nothing
_BRANCH_OUT = ("feed_forward_macaron.w_2.", "feed_forward.w_2.", "merge_proj.", "cross_attn.linear_out.")


def grow_state(sd, model):
    """sd (a state_dict with fewer encoder layers than model) completed for model: each missing
    layer is appended after the last one as a copy of sd's last layer whose residual branches
    end in zero weights (they add nothing) and whose norm_final is plain (gain 1, bias 0), so the
    grown layers only normalise again what after_norm normalises anyway and the grown model
    computes what sd's model computes. Cross-attention a grown layer has and sd's last layer has
    not keeps model's fresh initialisation, with its output layer zero as well. ValueError when
    sd has no encoder layers, as many as model or more, or other keys than model."""
    pre = "encoder.encoders."
    have = sorted({int(k[len(pre):].split(".")[0]) for k in sd if k.startswith(pre)})
    want = len(model.encoder.encoders)
    if not have or have != list(range(len(have))) or len(have) >= want:
        raise ValueError(f"--grow: the initial weights have {len(have)} encoder layers, the model "
                         f"{want}; growing needs 1 to {want - 1}")
    last = len(have) - 1
    out = dict(sd)
    fresh = model.state_dict()
    for i in range(len(have), want):
        for k, v in fresh.items():
            if not k.startswith(f"{pre}{i}."):
                continue
            name = k[len(f"{pre}{i}."):]
            src = sd.get(f"{pre}{last}.{name}")
            t = (src if src is not None else v).clone()
            if name.startswith(_BRANCH_OUT):
                t.zero_()
            elif name == "norm_final.weight":
                t.fill_(1.0)
            elif name == "norm_final.bias":
                t.zero_()
            out[k] = t
    extra = sorted(set(out) - set(fresh))
    if extra:
        raise ValueError(f"--grow: keys the model does not have: {extra[:3]}")
    return out


def read_state(path):
    """The state_dict of a .pth state_dict or of a train.py checkpoint.pt (its "model")."""
    sd = torch.load(path, map_location="cpu", weights_only=False)
    return sd["model"] if isinstance(sd.get("model"), dict) else sd


def load_weights(model, path, grow=False):
    """Model weights from a state_dict .pth (any float dtype) or a train.py checkpoint.pt; with
    grow, weights of a shallower model completed by grow_state()."""
    sd = read_state(path)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    if grow:
        sd = grow_state(sd, model)
    model.load_state_dict(sd)


def load_trained(work, exp, weights):
    """(cfg, hp, model in eval mode, sentencepiece processor, token list, mean, std) of a trained
    model: EXP's config.yaml and feats_stats.npz, WEIGHTS (see load_weights), WORK's tokenizer.
    For the tools that decode with PyTorch (fitcheck.py, window_check.py)."""
    import sentencepiece
    import yaml
    cfg = yaml.safe_load(open(os.path.join(exp, "config.yaml"), encoding="utf-8"))
    hp = ref.HParams(cfg)
    model = ref.OwsmCtcModel(hp)
    load_weights(model, weights)
    model.eval()
    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(os.path.join(work, "tok", "bpe.model"))
    tl = [l.rstrip("\n") for l in open(os.path.join(work, "tok", "tokens.txt"), encoding="utf-8")]
    mean, std = ref.global_mvn_stats(os.path.join(exp, "feats_stats.npz"))
    return cfg, hp, model, sp, tl, mean, std


def sizes(a):
    return types.SimpleNamespace(
        layers=a.layers, d_model=a.d_model, heads=a.heads, ffn=a.ffn, cgmlp=a.cgmlp,
        cgmlp_kernel=a.cgmlp_kernel, merge_kernel=a.merge_kernel, prompt_layers=a.prompt_layers,
        prompt_d=a.d_model, prompt_heads=a.heads, prompt_ffn=a.prompt_ffn,
        cross_layers=a.cross_layers, interctc=a.interctc, n_mels=80)


def make_config(a, token_list):
    cfg = ref.build_config(sizes(a), token_list, "bpe.model", "feats_stats.npz")
    cfg["preprocessor_conf"]["speech_length"] = a.window
    cfg["preprocessor_conf"]["speech_init_silence"] = a.window
    cfg["preprocessor_conf"]["text_prev_apply_prob"] = 0.0
    cfg["preprocessor_conf"]["lang_apply_prob"] = 1.0 - a.nolang_prob
    cfg["model_conf"]["interctc_weight"] = a.interctc_weight
    cfg["specaug"] = "specaug"
    cfg["specaug_conf"] = {"num_freq_mask": 2, "freq_mask_width_range": [0, a.freq_mask],
                           "num_time_mask": 2, "time_mask_width_ratio_range": [0.0, 0.05]}
    cfg["optim"] = "adam"
    cfg["optim_conf"] = {"lr": a.lr, "betas": [0.9, 0.98]}
    cfg["scheduler"] = "warmup_cosine"
    cfg["scheduler_conf"] = {"warmup_steps": a.warmup, "max_steps": a.max_steps}
    cfg["batch_size"] = a.batch
    return cfg


def feats_stats(idx, feats, path):
    """ESPnet's feats_stats.npz (count, sum, sum_square) over the training utterances' frames."""
    s = np.zeros(80, np.float64)
    s2 = np.zeros(80, np.float64)
    n = 0
    for m in idx:
        x = np.asarray(feats[m["offset"]:m["offset"] + m["frames"]], dtype=np.float64)
        s += x.sum(0)
        s2 += (x * x).sum(0)
        n += x.shape[0]
    np.savez(path, count=np.int64(n), sum=s.astype(np.float32), sum_square=s2.astype(np.float32))


def init_stats(path, out):
    """Write OUT, a feats_stats.npz (count 1, sum = mean, sum_square = std^2 + mean^2) from which
    ref.global_mvn_stats gives back the normalisation stored in the weights PATH (--init:
    normalize.mean/std), and return True; False when PATH has no such buffers. A continued model
    is then fed features normalised as it was trained, and training (the batches) and the export
    (the model's buffers, which --init loads) use the same statistics even when the core set was
    re-synthesised with other renditions."""
    sd = read_state(path)
    if "normalize.mean" not in sd or "normalize.std" not in sd:
        return False
    m = sd["normalize.mean"].double().numpy()
    s = sd["normalize.std"].double().numpy()
    np.savez(out, count=np.int64(1), sum=m, sum_square=s * s + m * m)
    return True


class Batcher:
    def __init__(self, a, idx, feats, sp, tl, mean, std, rng, long=False):
        """long: also keep the utterances that fit --long-window (the training batches); a batch
        holding one of them is placed in that window instead of --window."""
        self.a, self.sp, self.rng = a, sp, rng
        self.feats = feats if isinstance(feats, list) else [feats]  # one array per source dir
        self.tid = {t: i for i, t in enumerate(tl)}
        self.tw = 1 + int(a.window * 16000) // 160
        lw = getattr(a, "long_window", 0.0)
        self.ltw = max(self.tw, 1 + int(lw * 16000) // 160) if long and lw > 0 else self.tw
        self.mean = torch.from_numpy(mean)
        self.std = torch.from_numpy(std)
        self.idx = [m for m in idx if m["frames"] <= self.ltw]
        self.n_long = sum(m["frames"] > self.tw for m in self.idx)
        self.dropped = len(idx) - len(self.idx)
        self.order = []
        self.cache = {}

    def ids(self, text):
        out = []
        for s in self.sp.EncodeAsIds(text):
            out.append(1 if s == 0 else s - 1)  # token id = sp id - 1 (sp 0 <unk> -> 1)
        return out

    def enc(self, text):
        v = self.cache.get(text)
        if v is None:
            v = self.cache[text] = self.ids(text)
        return v

    def window(self, m, lead, tw=None):
        x = torch.full((tw or self.tw, 80), SILENCE)
        src = self.feats[m.get("src", 0)]
        f = torch.from_numpy(np.asarray(src[m["offset"]:m["offset"] + m["frames"]], dtype=np.float32))
        x[lead:lead + f.shape[0]] = f
        return (x - self.mean) / self.std

    def specaug(self, x, lead, n):
        """Masks inside the utterance only: the silence around it stays digital silence, as at
        inference (and identical in every sample, which the cropped subsampling relies on)."""
        a, rng = self.a, self.rng
        for _ in range(2):
            w = rng.randint(0, a.freq_mask)
            f0 = rng.randint(0, 80 - w)
            x[lead:lead + n, f0:f0 + w] = 0.0
        for _ in range(2):
            w = rng.randint(0, max(1, int(0.05 * n)))
            t0 = rng.randint(0, max(1, n - w))
            x[lead + t0:lead + t0 + w, :] = 0.0
        return x

    def epoch_order(self):
        """Shuffled batches of similar lengths (the cropped subsampling costs the longest one).
        With --lang-weight, an utterance of a weighted language is in the epoch int(W) times, and
        once more with probability W - int(W)."""
        lw = getattr(self.a, "lang_weight", None) or {}
        order = []
        for i, m in enumerate(self.idx):
            w = lw.get(m["lang"], 1.0)
            n = int(w)
            if w != n and self.rng.random() < w - n:  # no draw without weights: same order as before
                n += 1
            order += [i] * n
        self.rng.shuffle(order)
        chunk = self.a.batch * 50
        out = []
        for k in range(0, len(order), chunk):
            part = sorted(order[k:k + chunk], key=lambda i: self.idx[i]["frames"])
            bs = [part[j:j + self.a.batch] for j in range(0, len(part), self.a.batch)]
            self.rng.shuffle(bs)
            out += [i for b in bs for i in reversed(b)]
        return out

    def task_of(self, m):
        """(task token, target text) for one sample."""
        if self.rng.random() < self.a.st_prob:
            cands = [l for l in m["pair"] if f"<st_{l}>" in self.tid]
            if cands:
                l = cands[self.rng.randrange(len(cands))]
                return self.tid[f"<st_{l}>"], m["pair"][l]
        return self.tid["<asr>"], m["text"]

    def next(self, train=True, ms=None, task=None, nolang=None):
        a = self.a
        if ms is None:
            if not self.order:
                self.order = self.epoch_order()
            ms = [self.idx[self.order.pop()] for _ in range(min(a.batch, len(self.order)))]
        xs, prefix, fin, inter, spans = [], [], [], [], []
        tw = self.tw if max(m["frames"] for m in ms) <= self.tw else self.ltw
        for m in ms:
            lead = self.rng.randint(0, tw - m["frames"]) if train else 0
            x = self.window(m, lead, tw)
            if train:
                x = self.specaug(x, lead, m["frames"])
            xs.append(x)
            spans.append((lead, m["frames"]))
            lang = self.tid[f"<{m['lang']}>"]
            if task is None:
                tk, tgt = self.task_of(m) if train else (self.tid["<asr>"], m["text"])
            else:
                tk, tgt = task
            nl = (self.rng.random() < a.nolang_prob) if nolang is None else nolang
            prefix.append([self.tid["<nolang>"] if nl else lang, tk])
            fin.append([lang, tk] + self.enc(tgt))
            inter.append([lang, tk] + self.enc(m["text"]))
        self.spans = spans
        return torch.stack(xs), torch.tensor(prefix), fin, inter, ms


def install_cropped_subsampling(model, silence_frame, frozen=False):
    """Make conv2d8 skip the silence around each utterance, with the same result.

    An output frame j of the three 3x3 stride-2 convolutions sees input frames 8j .. 8j+14. Every
    output frame whose input is all silence equals one constant vector c (the silence frame is
    the same in every sample), so only the frames that touch the utterance are computed, on a crop
    starting at a multiple of 8 (so crop frame j' is window frame s/8 + j' exactly), and the rest
    are c. Gradients flow through both. Set `embed.spans` to the (lead, frames) list of the batch
    before a forward; with spans None the plain reference forward runs.

    frozen (--freeze-subsampling): the three convolutions are not trained (their weights get no
    gradient) and run without autograd, so the step skips their backward pass and that of their
    ReLUs, about 30 % of a step of model C on this CPU; `out` and everything after still train."""
    emb = model.encoder.embed
    if frozen:
        for p in emb.conv.parameters():
            p.requires_grad_(False)
    plain = emb.forward
    emb.spans = None

    def fwd(x, prefix_embeds):
        spans = emb.spans
        if spans is None:
            return plain(x, prefix_embeds)
        B, T, Fm = x.shape
        t3 = T
        for _ in range(3):
            t3 = (t3 - 3) // 2 + 1
        lo, hi = [], []
        for lead, n in spans:
            lo.append(max(0, -((14 - lead) // 8)))  # ceil((lead - 14) / 8)
            hi.append(min(t3 - 1, (lead + n - 1) // 8))
        K = max(h - l + 1 for l, h in zip(lo, hi))
        starts = [min(l, t3 - K) for l in lo]
        Lc = 8 * (K - 1) + 15
        crop = torch.stack([x[i, 8 * s0:8 * s0 + Lc] for i, s0 in enumerate(starts)])
        sil = silence_frame.to(device=x.device, dtype=x.dtype).view(1, 1, Fm).expand(1, Lc, Fm)
        # channels-last: oneDNN's preferred layout for these convolutions (about 10 % of a step)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            both = emb.conv(torch.cat([crop, sil]).unsqueeze(1).contiguous(memory_format=torch.channels_last))
        y, c = both[:B], both[B:, :, :1]  # (B, d, K, f'), (1, d, 1, f')
        rows = []
        for i, s0 in enumerate(starts):
            parts = []
            if s0 > 0:
                parts.append(c[0].expand(-1, s0, -1))
            parts.append(y[i])
            if s0 + K < t3:
                parts.append(c[0].expand(-1, t3 - s0 - K, -1))
            rows.append(torch.cat(parts, dim=1))
        h = torch.stack(rows)  # (B, d, t3, f')
        b, ch, t, f = h.size()
        h = emb.out(h.transpose(1, 2).contiguous().view(b, t, ch * f))
        if prefix_embeds is not None:
            h = torch.cat([prefix_embeds.to(h.dtype), h], dim=1)
        return emb.pos_enc(h)

    emb.conv.to(memory_format=torch.channels_last)
    emb.forward = fwd


def install_fast_depthwise(model):
    """Run the depthwise Conv1d layers (cgMLP's CSGU and the branch merge) as a float32 Conv2d on
    a channels-last [B, C, 1, T] view: the same convolution (the same weights and gradients, in
    float32 instead of bfloat16 under autocast), but oneDNN's channels-last depthwise kernel.
    Measured on this CPU, 2 threads, [24, 384, 77], kernel 15, forward + backward: 12.2 ms as
    the module runs it (bfloat16 or float32), 4.9 ms this way; 12 such layers in model C."""
    n = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv1d) and mod.groups == mod.in_channels == mod.out_channels \
                and mod.stride == (1,) and mod.dilation == (1,) and mod.padding_mode == "zeros":
            def fwd(x, m=mod):
                with torch.autocast(x.device.type, enabled=False):
                    w = m.weight.float().unsqueeze(2).contiguous(memory_format=torch.channels_last)
                    b = None if m.bias is None else m.bias.float()
                    y = F.conv2d(x.float().unsqueeze(2).contiguous(memory_format=torch.channels_last), w, b,
                                 1, (0, m.padding[0]), 1, m.groups)
                return y.squeeze(2)
            mod.forward = fwd
            n += 1
    return n


def ctc_loss(logits, targets):
    lp = logits.log_softmax(-1).transpose(0, 1)  # (T, B, V)
    T, B = lp.shape[0], lp.shape[1]
    dev = lp.device
    tl = torch.tensor([len(t) for t in targets], dtype=torch.long, device=dev)
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long, device=dev)
    loss = F.ctc_loss(lp, flat, torch.full((B,), T, dtype=torch.long, device=dev), tl, blank=0,
                      reduction="sum", zero_infinity=True)
    return loss / B


def forward_loss(model, hp, a, x, prefix, fin, inter, na):
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=a.bf16):
        enc, inters = model.encode(x, [[na]] * x.size(0), prefix)
        logits = model.ctc.ctc_lo(enc)
        logits_i = [model.ctc.ctc_lo(h) for _, h in inters]
    loss_f = ctc_loss(logits.float(), fin)
    if inters:
        loss_i = sum(ctc_loss(li.float(), inter) for li in logits_i) / len(inters)
        return (1 - a.interctc_weight) * loss_f + a.interctc_weight * loss_i, loss_f, loss_i
    return loss_f, loss_f, loss_f


def greedy(ids_row):
    out, prev = [], -1
    for i in ids_row:
        if i != prev and i != 0:
            out.append(i)
        prev = i
    return out


@torch.no_grad()
def validate(model, hp, a, bat, dev_idx, tl, sp, na):
    model.eval()
    model.encoder.embed.spans = None
    errs = chars = lid_ok = n = 0
    lang_ids = {i for i, t in enumerate(tl[4:155], 4)}
    for k in range(0, len(dev_idx), a.batch):
        ms = dev_idx[k:k + a.batch]
        for nolang in (False, True):
            x, prefix, _, _, _ = bat.next(train=False, ms=ms, nolang=nolang)
            x, prefix = x.to(a.device), prefix.to(a.device)
            enc, _ = model.encode(x, [[na]] * x.size(0), prefix)
            am = model.ctc.ctc_lo(enc).argmax(-1)
            for m, row in zip(ms, am.tolist()):
                hyp = greedy(row)
                if nolang:
                    first = next((i for i in hyp if i in lang_ids), None)
                    lid_ok += first is not None and tl[first] == f"<{m['lang']}>"
                    n += 1
                else:
                    pieces = [tl[i] for i in hyp if not (tl[i].startswith("<") and tl[i].endswith(">"))]
                    text = sp.DecodePieces(pieces)
                    ref_c = m["text"].replace(" ", "")
                    errs += edit_distance(ref_c, text.replace(" ", ""))
                    chars += len(ref_c)
    model.train()
    return errs / max(1, chars), lid_ok / max(1, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-model", dest="d_model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--cgmlp", type=int, default=512)
    ap.add_argument("--cgmlp-kernel", dest="cgmlp_kernel", type=int, default=15)
    ap.add_argument("--merge-kernel", dest="merge_kernel", type=int, default=15)
    ap.add_argument("--prompt-layers", dest="prompt_layers", type=int, default=1)
    ap.add_argument("--prompt-ffn", dest="prompt_ffn", type=int, default=256)
    ap.add_argument("--cross-layers", dest="cross_layers", type=ref._ilist, default=[3, 6])
    ap.add_argument("--interctc", type=ref._ilist, default=[3])
    ap.add_argument("--extra", action="append", default=[],
                    help="another synth.py output directory to train on (repeatable; stage 1b's "
                         "Debian sentences); DIR@eng,fra: only those languages' utterances of DIR; "
                         "feats_stats come from --train alone (from --init's weights when given)")
    ap.add_argument("--lang-weight", dest="lang_weight", type=parse_lang_weights, default={},
                    help="LANG:W,...: each epoch holds every utterance of LANG W times (a "
                         "fractional part is a seeded random share of them), so that languages "
                         "short of their targets get more of the training steps; default 1")
    ap.add_argument("--extra-cap", dest="extra_cap", type=int, default=0,
                    help="train on at most N --extra utterances of each language (all --extra "
                         "directories together; a seeded random draw), so that languages with "
                         "much Debian text do not crowd out the core set; 0: all")
    ap.add_argument("--window", type=float, default=6.0, help="speech_length in seconds")
    ap.add_argument("--long-window", dest="long_window", type=float, default=0.0,
                    help="also train on the utterances longer than --window that fit this many "
                         "seconds, each batch holding one of them padded to this window instead "
                         "(the exported model decodes in a 10 s window, run.sh DECODE_WINDOW); "
                         "0: leave them out")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--max-steps", dest="max_steps", type=int, default=3600)
    ap.add_argument("--max-minutes", dest="max_minutes", type=float, default=0.0)
    ap.add_argument("--st-prob", dest="st_prob", type=float, default=0.3)
    ap.add_argument("--nolang-prob", dest="nolang_prob", type=float, default=0.5)
    ap.add_argument("--interctc-weight", dest="interctc_weight", type=float, default=0.5)
    ap.add_argument("--freq-mask", dest="freq_mask", type=int, default=10)
    ap.add_argument("--ckpt-every", dest="ckpt_every", type=int, default=200)
    ap.add_argument("--valid-every", dest="valid_every", type=int, default=500)
    ap.add_argument("--valid-utts", dest="valid_utts", type=int, default=15, help="dev utterances per language")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false",
                    help="train in float32 (default: bfloat16 autocast, float32 weights)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--freeze-subsampling", dest="freeze_subsampling", action="store_true",
                    help="do not train the three conv2d8 convolutions (for continuing a trained model: "
                         "skips their backward pass, about 30 %% of a step)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: the recipe runs on the CPU; "
                    "a GPU, where there is one, only makes the same steps faster")
    ap.add_argument("--schedule-minutes", dest="schedule_minutes", type=float, default=0.0,
                    help="if > 0: the cosine schedule runs over this much training time (wall clock, "
                         "summed over resumed runs) instead of "
                         "--max-steps, and training stops when it is spent (for a fixed-time GPU lease)")
    ap.add_argument("--average", type=int, default=0,
                    help="keep the weights of the last N validations in EXP/snapshots and, when "
                         "training ends, validate their average (EXP/average.pth); it becomes "
                         "best.pth when its dev CER is the lowest")
    ap.add_argument("--init", help="start from these model weights (a state_dict .pth, any float dtype) "
                    "with a fresh optimiser and schedule; ignored when the experiment resumes")
    ap.add_argument("--grow", action="store_true",
                    help="--init holds a model with fewer encoder layers than --layers: append the "
                    "missing layers after its last one, made to change nothing at first (see grow_state)")
    a = ap.parse_args()
    if a.grow and not a.init:
        ap.error("--grow needs --init (the weights to grow)")
    torch.set_num_threads(a.threads)
    os.makedirs(a.exp, exist_ok=True)

    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor()
    sp.Load(os.path.join(a.tok, "bpe.model"))
    tl = [l.rstrip("\n") for l in open(os.path.join(a.tok, "tokens.txt"), encoding="utf-8")]
    idx, feats = load_split(a.train)
    n_core = len(idx)
    feats = [feats]
    for k, spec in enumerate(a.extra, 1):
        d, _, langs = spec.partition("@")
        i2, f2 = load_split(d, k)
        if langs:
            keep = set(langs.split(","))
            i2 = [m for m in i2 if m["lang"] in keep]
            if not i2:
                ap.error(f"--extra {spec}: {d} holds no utterance of {langs}")
        idx += i2
        feats.append(f2)
    if a.extra_cap > 0:
        idx = idx[:n_core] + cap_per_language(idx[n_core:], a.extra_cap, a.seed)
    unknown = sorted(set(a.lang_weight) - {m["lang"] for m in idx})
    if unknown:
        ap.error(f"--lang-weight: no training utterance of {', '.join(unknown)}")
    dev_idx, dev_feats = load_split(a.dev)
    stats = os.path.join(a.exp, "feats_stats.npz")
    if not os.path.exists(stats) and not (a.init and init_stats(a.init, stats)):
        # the core set's statistics only, so that adding --extra data to a continued model
        # keeps the normalisation it was trained with (a continuation takes --init's own, above)
        feats_stats(idx[:n_core], feats[0], stats)
    mean, std = ref.global_mvn_stats(stats)
    cfg = make_config(a, tl)
    hp = ref.HParams(cfg)
    import shutil
    import yaml
    with open(os.path.join(a.exp, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, allow_unicode=True, default_flow_style=False, sort_keys=False)
    shutil.copyfile(os.path.join(a.tok, "bpe.model"), os.path.join(a.exp, "bpe.model"))

    torch.manual_seed(a.seed)
    model = ref.OwsmCtcModel(hp)
    mel = ref.slaney_mel_matrix(hp.fs, hp.n_fft, hp.n_mels, hp.fmin, hp.fmax)
    model.frontend.logmel.melmat.copy_(torch.from_numpy(mel.T.copy()))
    model.normalize.mean.copy_(torch.from_numpy(mean))
    model.normalize.std.copy_(torch.from_numpy(std))
    n_par = sum(p.numel() for p in model.parameters())
    model.to(a.device)
    install_cropped_subsampling(model, (torch.full((80,), SILENCE) - torch.from_numpy(mean)) / torch.from_numpy(std),
                                a.freeze_subsampling)
    if a.device == "cpu":
        install_fast_depthwise(model)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98), eps=1e-9)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        if a.schedule_minutes > 0:
            # training time of every run of this experiment, so that a resumed run continues
            # the schedule where it stopped instead of starting it again
            p = min(1.0, (spent0 + time.time() - t_start) / (a.schedule_minutes * 60))
        else:
            p = min(1.0, (step - a.warmup) / max(1, a.max_steps - a.warmup))
        return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))

    rng = random.Random(a.seed)
    bat = Batcher(a, idx, feats, sp, tl, mean, std, rng, long=True)
    dbat = Batcher(a, dev_idx, dev_feats, sp, tl, mean, std, random.Random(0))
    dev_sub = per_language(dbat.idx, a.valid_utts)

    ck = os.path.join(a.exp, "checkpoint.pt")
    step, spent, best = 0, 0.0, float("inf")
    if os.path.exists(ck):
        st = torch.load(ck, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, spent, best = st["step"], st["spent"], st["best"]
        rng.setstate(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        log(a.exp, f"resumed at step {step} ({spent / 60:.1f} min trained, best dev CER {best:.4f})")
    else:
        if a.init:
            load_weights(model, a.init, a.grow)
            log(a.exp, f"initialised from {a.init}" + (f", grown to {a.layers} layers" if a.grow else ""))
        log(a.exp, f"{n_par} parameters, vocab {len(tl)}, {len(bat.idx)} training utterances "
                   f"({len(idx) - n_core} of them from --extra"
                   f"{f', at most {a.extra_cap} per language' if a.extra_cap > 0 else ''}; "
                   f"{bat.dropped} longer than {max(a.window, a.long_window)} s left out), window {bat.tw} frames"
                   f"{f', {bat.n_long} in the long window of {bat.ltw} frames' if bat.ltw > bat.tw else ''}"
                   + (f"; language weights {a.lang_weight}" if a.lang_weight else ""))

    def save():
        st = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "spent": spent,
              "best": best, "rng": rng.getstate(), "torch_rng": torch.get_rng_state()}
        save_atomic(st, ck)

    snap_dir = os.path.join(a.exp, "snapshots")

    def snapshots():
        # (step, file) of the kept snapshots, oldest first
        if not os.path.isdir(snap_dir):
            return []
        return sorted((int(f[4:-4]), os.path.join(snap_dir, f)) for f in os.listdir(snap_dir)
                      if f.startswith("step") and f.endswith(".pth") and f[4:-4].isdigit())

    def valid():
        nonlocal best
        cer, lid = validate(model, hp, a, dbat, dev_sub, tl, sp, na)
        log(a.exp, f"step {step} dev CER {cer * 100:.2f} % LID {lid * 100:.1f} % ({len(dev_sub)} utterances)")
        if cer < best:
            best = cer
            torch.save(model.state_dict(), os.path.join(a.exp, "best.pth"))
        if a.average > 1:
            os.makedirs(snap_dir, exist_ok=True)
            save_atomic(model.state_dict(), os.path.join(snap_dir, f"step{step:07d}.pth"))
            for _, old in snapshots()[:-a.average]:
                os.remove(old)

    na = hp.ids["na"]
    model.train()
    t_start = time.time()
    spent0 = spent
    run = {"loss": 0.0, "f": 0.0, "i": 0.0, "n": 0}
    while step < a.max_steps:
        if a.schedule_minutes > 0 and spent0 + time.time() - t_start > a.schedule_minutes * 60:
            log(a.exp, f"--schedule-minutes {a.schedule_minutes} spent at step {step}")
            break
        if a.max_minutes and time.time() - t_start > a.max_minutes * 60:
            log(a.exp, f"--max-minutes {a.max_minutes} reached at step {step}; rerun to resume")
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, prefix, fin, inter, _ = bat.next()
        x, prefix = x.to(a.device, non_blocking=True), prefix.to(a.device)
        model.encoder.embed.spans = bat.spans
        loss, lf, li = forward_loss(model, hp, a, x, prefix, fin, inter, na)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if torch.isfinite(gn):
            opt.step()
        step += 1
        spent = spent0 + time.time() - t_start
        run["loss"] += loss.item()
        run["f"] += lf.item()
        run["i"] += li.item()
        run["n"] += 1
        if step % 50 == 0:
            n = run["n"]
            log(a.exp, f"step {step} loss {run['loss'] / n:.2f} (final {run['f'] / n:.2f}, inter "
                       f"{run['i'] / n:.2f}) lr {lr_at(step):.2e} {spent / step:.2f} s/step")
            run = {"loss": 0.0, "f": 0.0, "i": 0.0, "n": 0}
        if step % a.valid_every == 0 or step == a.max_steps:
            valid()
        if step % a.ckpt_every == 0:
            save()
    if a.schedule_minutes > 0 and step % a.valid_every != 0:
        valid()
    save()
    torch.save(model.state_dict(), os.path.join(a.exp, "last.pth"))
    if not os.path.exists(os.path.join(a.exp, "best.pth")):
        torch.save(model.state_dict(), os.path.join(a.exp, "best.pth"))
    snaps = snapshots()
    if a.average > 1 and len(snaps) > 1:
        # the mean of the last validated weights (float tensors; the others, such as counters,
        # from the newest snapshot)
        sds = [torch.load(f, map_location="cpu", weights_only=True) for _, f in snaps]
        avg = {k: (torch.stack([sd[k].float() for sd in sds]).mean(0).to(v.dtype)
                   if v.is_floating_point() else v) for k, v in sds[-1].items()}
        model.load_state_dict(avg)
        torch.save(model.state_dict(), os.path.join(a.exp, "average.pth"))
        cer, lid = validate(model, hp, a, dbat, dev_sub, tl, sp, na)
        log(a.exp, f"average of the {len(snaps)} snapshots of steps {snaps[0][0]}-{snaps[-1][0]}: "
                   f"dev CER {cer * 100:.2f} % LID {lid * 100:.1f} %"
                   + ("; it is best.pth" if cer < best else f"; best.pth stays ({best * 100:.2f} %)"))
        if cer < best:
            best = cer
            torch.save(model.state_dict(), os.path.join(a.exp, "best.pth"))
    log(a.exp, f"stopped at step {step}, {spent / 60:.1f} min, best dev CER {best * 100:.2f} %")


# glibc malloc settings for training: transparent huge pages for its large blocks, and freed
# memory kept for reuse instead of returned to the kernel. Each training step allocates and frees
# hundreds of MB of tensors; with 4 KiB pages every new block costs a page fault per page, which
# measured as 0.5 GB/s for a plain tensor copy on the development VM and about 2.4x the time of a
# whole step (2.6 s -> 1.1 s per step of 24 with these settings). glibc reads them at start-up,
# so the script re-executes itself once with them set; a GLIBC_TUNABLES of the caller's wins.
MALLOC_TUNABLES = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=68719476736"


def reexec_with_malloc_tunables():
    if "GLIBC_TUNABLES" in os.environ or os.environ.get("OWSM_TRAIN_NO_REEXEC"):
        return
    os.environ["GLIBC_TUNABLES"] = MALLOC_TUNABLES
    try:
        os.execv(sys.executable, [sys.executable] + sys.argv)
    except OSError:
        pass  # run on with the default allocator


if __name__ == "__main__":
    reexec_with_malloc_tunables()
    main()
