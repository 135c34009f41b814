#!/usr/bin/env python3
"""OWSM-CTC converter test (run by tests/owsm_convert.sh under `make check`).

Makes small random ESPnet checkpoints with the reference (tests/ref/owsm_ctc.py), using the
released token list, bpe.model and feats_stats.npz from $COCHLEA_SHARED/owsm, converts them with
tools/convert_owsm_ctc.py and checks the GGUF files against the state_dicts: every tensor
(F32 bit-exact, F16/BF16/Q8_0 within their rounding bounds), the storage types, every
hyper-parameter key, the token list, the SentencePiece bytes, the mel matrix and the MVN
statistics; a 128-mel (v4) model; that the converter fails by name on a missing, an extra and
a mis-shaped tensor; that the reference and the converter agree on the 1B geometry
(1204 tensors, 1,005,050,706 / 1,011,342,162 parameters, spec section 6); that the reference
frontend equals an independent numpy implementation of spec section 1; and `cochlea info` on
the files when the program has that command. Exit 77 (skip) when ../shared/owsm or torch is
missing.
"""

import contextlib
import importlib.util
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

SRC = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("COCHLEA_SHARED") or os.path.join(SRC, "..", "shared")
OWSM = os.path.join(SHARED, "owsm")
COCHLEA = os.environ.get("COCHLEA", "")
REF = os.path.join(SRC, "tests", "ref", "owsm_ctc.py")
CONV = os.path.join(SRC, "tools", "convert_owsm_ctc.py")

for f in ("config.yaml", "bpe.model", "feats_stats.npz"):
    if not os.path.isfile(os.path.join(OWSM, f)):
        print(f"SKIP: {os.path.join(OWSM, f)} is absent (the released OWSM assets)")
        sys.exit(77)
_missing = [m for m in ("numpy", "torch", "yaml", "sentencepiece") if importlib.util.find_spec(m) is None]
if _missing:
    print(f"SKIP: {sys.executable} lacks {', '.join(_missing)} (needed by the reference)")
    sys.exit(77)
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path[:0] = [os.path.join(SRC, "tools"), os.path.join(SRC, "tests", "ref")]
import convert_owsm_ctc as conv  # noqa: E402
import owsm_ctc as ref  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from checks import FAILS, check  # noqa: E402

torch.set_num_threads(1)


def run(args, expect_ok=True):
    """Run a tool's command line in this process (one torch import for the whole test):
    args[0] is REF or CONV, the rest its argv. Returns (exit status, stdout + stderr)."""
    main_fn = {REF: ref.main, CONV: conv.main}[args[0]]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = main_fn(args[1:]) or 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    out = buf.getvalue()
    if expect_ok and rc != 0:
        print(out)
    return rc, out


def tensor_matches(name, want, t, storage):
    """Compare a GGUF tensor with the state_dict value under its storage type's bound."""
    got = t.numpy()
    if got.shape != want.shape:
        return False, f"shape {got.shape} != {want.shape}"
    if storage == "f32":
        ok = np.array_equal(got.view(np.uint32), want.view(np.uint32))
        return ok, "bit-exact" if ok else f"max diff {np.abs(got - want).max()}"
    if storage == "f16":
        bound = np.abs(want) * 2.0 ** -11 + 2.0 ** -24
    elif storage == "bf16":
        bound = np.abs(want) * 2.0 ** -8 + 1e-38
    else:  # q8_0: |x - d16 q| <= d/2 + 127 |d16 - d| with d = amax/127 per block of 32
        blocks = np.abs(want.reshape(-1, 32)).max(axis=1) / 127.0
        bound = np.repeat(blocks * (0.5 + 127 * 2.0 ** -11) + 1e-12, 32).reshape(want.shape)
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ok = bool(np.all(err <= bound)) and (storage != "q8_0" or not np.array_equal(got, want))
    return ok, f"max err {err.max():.3g}"


def check_file(path, sd, h, target, spm_bytes):
    """Every tensor, type, key, token and byte of one converted file."""
    r = GGUFReader(path)
    kv = {k: v.value for k, v in r.kv.items()}
    check(kv.get("general.architecture") == "owsm_ctc", f"{target}: general.architecture")
    check(kv.get("general.file_type") == {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}[target],
          f"{target}: general.file_type")
    names = [t.name for t in r.tensors]
    check(sorted(names) == sorted(sd.keys()), f"{target}: tensor names equal the state_dict's "
          f"({len(names)} vs {len(sd)})")
    n_q = n_f16 = 0
    bad = []
    for t in r.tensors:
        if t.name not in sd:
            continue
        want = sd[t.name].float().numpy()
        shape = tuple(want.shape)
        storage = conv.choose_type(t.name, shape, target)
        if t.type != storage:
            bad.append(f"{t.name}: stored {t.type}, rule says {storage}")
            continue
        ok, msg = tensor_matches(t.name, np.ascontiguousarray(want, np.float32), t, storage)
        if not ok:
            bad.append(f"{t.name} ({storage}): {msg}")
        n_q += storage == "q8_0"
        n_f16 += storage == "f16"
    check(not bad, f"{target}: all {len(names)} tensors equal the state_dict within their type's "
          "bound" + ("" if not bad else ": " + "; ".join(bad[:5])))
    if target == "q8_0":
        check(n_q > 0 and n_f16 > 0, f"q8_0: both Q8_0 ({n_q}) and F16 fallback ({n_f16}) tensors")
        ty = {t.name: t.type for t in r.tensors}
        check(ty["encoder.embed.out.weight"] == "q8_0" and ty["ctc.ctc_lo.weight"] == "q8_0"
              and ty["encoder.encoders.0.depthwise_conv_fusion.weight"] == "f16"
              and ty["encoder.embed.conv.0.weight"] == "f16"
              and ty["encoder.encoders.0.norm_mha.weight"] == "f32"
              and ty["encoder.encoders.0.merge_proj.bias"] == "f32"
              and ty["frontend.logmel.melmat"] == "f32" and ty["normalize.std"] == "f32",
              "q8_0: per-tensor storage (matrices q8_0, ne[0]=31/3 kernels f16, norms/biases/"
              "frontend f32)")

    A = "owsm_ctc."
    want_kv = {
        A + "sample_rate": 16000, A + "n_fft": 512, A + "win_length": 400, A + "hop_length": 160,
        A + "n_mels": h.n_mels, A + "fmin": 0.0, A + "fmax": 8000.0, A + "window": "hann",
        A + "normalize": "global_mvn", A + "input_layer": "conv2d8", A + "subsampling": 8,
        A + "speech_length": 30.0, A + "embedding_length": h.d_model,
        A + "block_count": h.num_blocks, A + "attention.head_count": h.heads,
        A + "feed_forward_length": h.ffn_units, A + "use_ffn": True, A + "macaron_ffn": True,
        A + "ffn_scale": 0.5, A + "ffn_activation": "swish", A + "cgmlp.linear_units": h.cgmlp_units,
        A + "cgmlp.conv_kernel": h.cgmlp_kernel, A + "cgmlp.activation": "gelu",
        A + "cgmlp.gate_activation": "identity", A + "merge_conv_kernel": h.merge_kernel,
        A + "interctc_use_conditioning": True, A + "prompt.embedding_length": h.p_d,
        A + "prompt.block_count": h.p_blocks, A + "prompt.attention.head_count": h.p_heads,
        A + "prompt.feed_forward_length": h.p_ffn, A + "prompt.ffn_activation": "relu",
        A + "vocab_size": h.vocab_size, A + "pos_enc": "abs_pos",
        A + "blank_id": h.ids["blank"], A + "unk_id": h.ids["unk"], A + "na_id": h.ids["na"],
        A + "nolang_id": h.ids["nolang"], A + "sos_id": h.ids["sos"], A + "eos_id": h.ids["eos"],
        A + "sop_id": h.ids["sop"], "tokenizer.ggml.unknown_token_id": h.ids["unk"],
        "tokenizer.ggml.eos_token_id": h.ids["eos"],
    }
    wrong = [f"{k}={kv.get(k)!r} (want {v!r})" for k, v in want_kv.items() if kv.get(k) != v]
    check(not wrong, f"{target}: {len(want_kv)} hyper-parameter keys"
          + ("" if not wrong else ": " + ", ".join(wrong)))
    check(abs(kv.get(A + "attention.layer_norm_epsilon", 0) - 1e-12) < 1e-18
          and abs(kv.get(A + "log_floor", 0) - 1e-10) < 1e-16, f"{target}: eps and log floor")
    cross = [i for i, v in enumerate(h.cross_attention) if v]
    check(list(kv.get(A + "cross_attention_layers", [])) == cross,
          f"{target}: cross_attention_layers (0-based) = {cross}")
    inter = [i - 1 for i in h.interctc_layer_idx]
    check(list(kv.get(A + "interctc_layers", [])) == inter, f"{target}: interctc_layers (0-based) = {inter}")
    toks = kv.get("tokenizer.ggml.tokens", [])
    check(toks == h.token_list, f"{target}: tokenizer.ggml.tokens equals the token list ({len(toks)})")
    tt = list(kv.get("tokenizer.ggml.token_type", []))
    check(len(tt) == len(toks) and tt[0] == 3 and tt[1] == 2 and tt[2] == 4
          and tt[h.ids["eos"]] == 3 and tt[-1] == 3 and tt.count(1) == len(toks) - sum(
              1 for t in toks if len(t) > 1 and t[0] == "<" and t[-1] == ">"),
          f"{target}: tokenizer.ggml.token_type")
    spm = kv.get("tokenizer.sentencepiece.model")
    check(spm is not None and bytes(np.asarray(spm, dtype=np.uint8)) == spm_bytes,
          f"{target}: tokenizer.sentencepiece.model holds the bpe.model bytes ({len(spm_bytes)})")
    return r


def main():
    tmp = tempfile.mkdtemp(prefix="owsm_convert.")
    try:
        cfg_real = os.path.join(OWSM, "config.yaml")
        ck = os.path.join(tmp, "ck")
        size = ["--layers", "2", "--d-model", "64", "--heads", "4", "--ffn", "128", "--cgmlp", "128",
                "--prompt-layers", "1", "--prompt-d", "32", "--prompt-heads", "2", "--prompt-ffn", "64",
                "--cross-layers", "2", "--interctc", "1", "--seed", "3"]
        rc, out = run([REF, "make-checkpoint", ck, "--vocab-from", cfg_real,
                       "--stats", os.path.join(OWSM, "feats_stats.npz")] + size)
        check(rc == 0, "reference make-checkpoint (real vocab, 2 layers, d 64)")
        if rc:
            return
        sd = torch.load(os.path.join(ck, "model.pth"), map_location="cpu")
        h = ref.HParams(ref.load_config(os.path.join(ck, "config.yaml")))
        check(h.vocab_size == 50002 and len(h.token_list) == 50002, "token list has 50,002 entries")
        with open(os.path.join(OWSM, "bpe.model"), "rb") as f:
            spm_bytes = f.read()

        # the reference's state_dict is exactly what the converter expects from the config
        exp = conv.expected_tensors(conv.parse_config(conv.load_yaml(os.path.join(ck, "config.yaml"))))
        check([(k, tuple(v.shape)) for k, v in sd.items()] == [(n, tuple(s)) for n, s in exp],
              f"reference state_dict names/shapes/order == converter's expected list ({len(exp)})")

        # mel matrix and MVN statistics
        mel = ref.slaney_mel_matrix(16000, 512, 80, 0.0, 8000.0)
        check(np.array_equal(sd["frontend.logmel.melmat"].numpy(), mel.T)
              and np.array_equal(conv.slaney_melmat(16000, 512, 80, 0.0, 8000.0), mel.T),
              "melmat = reference Slaney filterbank (checkpoint and converter fallback)")
        mean, std = conv.mvn_from_stats(os.path.join(OWSM, "feats_stats.npz"), 1e-20)
        check(np.array_equal(sd["normalize.mean"].numpy(), mean)
              and np.array_equal(sd["normalize.std"].numpy(), std),
              "normalize.mean/std = GlobalMVN of the released feats_stats.npz")
        check(abs(mean[0] + 17.5033) < 1e-3 and abs(std[0] - 7.6125) < 1e-3 and abs(mean[79] + 20.4279) < 1e-3
              and abs(std[79] - 4.2730) < 1e-3, "MVN sanity values of spec section 1")

        outs = {}
        for t in ("f32", "q8_0"):
            outs[t] = os.path.join(tmp, f"m-{t}.gguf")
            rc, out = run([CONV, ck, outs[t], "--type", t])
            check(rc == 0 and os.path.isfile(outs[t]), f"convert --type {t}")
            if rc == 0:
                r = check_file(outs[t], sd, h, t, spm_bytes)
                if t == "f32":
                    check(np.array_equal(r.tensor("frontend.logmel.melmat").numpy(), mel.T),
                          "f32: GGUF melmat equals the reference filterbank, shape (257, 80) "
                          "= ne [80, 257]")
                    check(r.tensor("frontend.logmel.melmat").ne == [80, 257], "f32: melmat ne order")

        # 128-mel (v4 geometry) with a synthetic vocabulary, f16 and bf16
        ck4 = os.path.join(tmp, "ck4")
        rc, _ = run([REF, "make-checkpoint", ck4, "--n-mels", "128", "--vocab", "200"] + size)
        check(rc == 0, "reference make-checkpoint (128 mels, synthetic vocab)")
        if rc == 0:
            sd4 = torch.load(os.path.join(ck4, "model.pth"), map_location="cpu")
            h4 = ref.HParams(ref.load_config(os.path.join(ck4, "config.yaml")))
            check(tuple(sd4["encoder.embed.out.weight"].shape) == (64, 64 * 15)
                  and tuple(sd4["frontend.logmel.melmat"].shape) == (257, 128),
                  "128 mels: embed.out [64, 960], melmat [257, 128]")
            with open(os.path.join(ck4, "bpe.model"), "rb") as f:
                spm4 = f.read()
            for t in ("f16", "bf16"):
                o = os.path.join(tmp, f"m4-{t}.gguf")
                rc, _ = run([CONV, ck4, o, "--type", t])
                check(rc == 0, f"convert 128-mel --type {t}")
                if rc == 0:
                    check_file(o, sd4, h4, t, spm4)

        # failures: missing, extra and mis-shaped tensors, each named in the message
        bad_cases = [
            ("missing", lambda d: d.pop("encoder.encoders.1.cgmlp.csgu.conv.weight"),
             "missing tensor 'encoder.encoders.1.cgmlp.csgu.conv.weight'"),
            ("extra", lambda d: d.__setitem__("encoder.encoders.0.cross_attn.linear_q.weight",
                                             torch.zeros(64, 64)),
             "unexpected tensor 'encoder.encoders.0.cross_attn.linear_q.weight'"),
            ("mis-shaped", lambda d: d.__setitem__("prompt_proj.weight", torch.zeros(32, 64)),
             "tensor 'prompt_proj.weight' has shape [32, 64], the config needs [64, 32]"),
        ]
        for what, edit, msg in bad_cases:
            bd = os.path.join(tmp, "bad-" + what)
            shutil.copytree(ck, bd)
            d = dict(sd)
            edit(d)
            torch.save(d, os.path.join(bd, "model.pth"))
            o = os.path.join(tmp, f"bad-{what}.gguf")
            rc, out = run([CONV, bd, o], expect_ok=False)
            check(rc != 0 and msg in out and not os.path.exists(o),
                  f"converter refuses a {what} tensor, naming it (rc {rc})")

        # the 1B geometry: reference module (meta device) vs the converter's expected list
        cfg = ref.load_config(cfg_real)
        for n_mels, n_params in ((80, 1005050706), (128, 1011342162)):
            c = dict(cfg)
            c["frontend_conf"] = dict(cfg["frontend_conf"], n_mels=n_mels)
            m = ref.OwsmCtcModel(ref.HParams(c), device="meta")
            got = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
            e = [(n, tuple(s)) for n, s in conv.expected_tensors(conv.parse_config(c))]
            check(got == e and len(got) == 1204
                  and sum(p.numel() for p in m.parameters()) == n_params
                  and sum(math.prod(s) for n, s in e if n not in conv.BUFFERS) == n_params,
                  f"1B geometry, {n_mels} mels: 1204 tensors, {n_params} parameters (reference == converter)")

        # reference frontend == an independent numpy implementation of spec section 1
        rng = np.random.RandomState(5)
        t = np.arange(16000 * 3) / 16000.0
        wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.randn(t.size)).astype(np.float32)
        wav[:4000] = 0.0  # a stretch of digital silence exercises the 1e-10 floor
        feats_path = os.path.join(tmp, "feats.npy")
        wav_path = os.path.join(tmp, "x.wav")
        with open(wav_path, "wb") as f:
            pcm = np.clip(np.round(wav * 32768), -32768, 32767).astype("<i2").tobytes()
            f.write(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack(
                "<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)
        wav = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        js = os.path.join(tmp, "out.json")
        rc, out = run([REF, "run", ck, wav_path, "--lang", "eng", "--dump-feats", feats_path, "--json", js])
        check(rc == 0, "reference run on a 3 s WAV")
        if rc == 0:
            feats = np.load(feats_path)[0]
            x = np.zeros(480000, np.float32)
            x[:wav.size] = wav
            xp = np.pad(x.astype(np.float64), 256, mode="reflect")
            n_frames = 1 + x.size // 160
            win = np.zeros(512)
            win[56:456] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
            idx = np.arange(n_frames)[:, None] * 160 + np.arange(512)[None, :]
            spec = np.fft.rfft(xp[idx] * win, axis=1)
            power = spec.real ** 2 + spec.imag ** 2
            logmel = np.log(np.maximum(power @ mel.T.astype(np.float64), 1e-10))
            want = (logmel - mean) / std
            diff = np.abs(feats - want)
            check(feats.shape == (3001, 80) and diff.max() < 2e-3 and diff.mean() < 1e-5,
                  f"reference features == numpy STFT/mel/log/MVN (max {diff.max():.2g}, "
                  f"mean {diff.mean():.2g})")
            res = json.load(open(js, encoding="utf-8"))
            check(len(res["frame_argmax"][0]) == 376 and res["prefix"] == [31, 155]
                  and res["prompt_ids"] == [2],
                  "reference run: 376 positions, prefix <eng><asr>, prompt <na>")

        # cochlea info, when the program has the command
        has_info = COCHLEA and os.access(COCHLEA, os.X_OK) and subprocess.run(
            [COCHLEA, "help", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if has_info:
            total = sum(v.numel() for v in sd.values())
            for t, path in outs.items():
                p = subprocess.run([COCHLEA, "info", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                text = p.stdout.decode("utf-8", "replace")
                listed = {}
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] in sd:
                        listed[parts[0]] = parts[1].lower()
                wrong = [n for n in sd if listed.get(n) != conv.choose_type(n, tuple(sd[n].shape), t)]
                check(p.returncode == 0 and "owsm_ctc" in text and not wrong
                      and f"{len(sd)} tensors, {total} parameters" in text,
                      f"cochlea info {os.path.basename(path)}: architecture, all {len(sd)} tensors "
                      f"with their storage types, {total} parameters"
                      + (f" (wrong/missing {wrong[:3]})" if wrong else ""))
        else:
            print("note: cochlea info is not available; skipped that part")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        sys.exit(1)
    print("all checks passed")
