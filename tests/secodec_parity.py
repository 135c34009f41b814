#!/usr/bin/env python3
"""C-vs-PyTorch parity of the SECodec SEANet encoder/decoder (run by tests/secodec_parity.sh).

Models (random weights, converted by tools/convert_secodec.py):
  A: n_filters 4, D 32, strides 8,5,4,2 (hop 320), 2-layer BiLSTM encoder, 3 RVQ levels of 16
     codewords; made by the reference (tests/ref/secodec.py: weight_g/weight_v state_dict +
     config.json), converted as a checkpoint would be.
  B: n_filters 2, D 16, strides 3,2 (hop 6), one unidirectional LSTM layer, true_skip, two
     ResBlocks per stage (dilations 1 and 3, residual kernel 5), compress 1, kernels 5 and 3;
     made by the converter's --random-init (+ --save-checkpoint for the reference). Also written
     as f16 and bf16 files, compared with the reference holding the same rounded weights.
  C: the default widths (n_filters 64, D 1024, 103M parameters), --random-init, an f16 file
     (half the bytes to write and read), short inputs only; the reference takes its weights
     from the GGUF file.
The C side is the driver mode of tests/test_codec_seanet (encode/decode raw float32 files, one
thread). Checked: T = ceil(L / hop) latent frames and T * hop output samples, max |C - ref| <= TOL
on latents and decoded audio for lengths from 1 sample (shorter than every reflect pad) up to
a few thousand, the decoder on RVQ-quantised latents (the codebook pipeline), the codebooks and
quantiser keys in the file, and errors: a checkpoint that does not match its config makes the
converter fail naming the tensor, a file missing a tensor makes the C loader fail naming it.
SECODEC_BENCH=1 also prints the encode/decode real-time factor of model C on one thread.
Exit 1 on any failed check.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("top_builddir", ".")
DRIVER = os.environ.get("SEANET_DRIVER") or os.path.join(BUILD, "tests", "test_codec_seanet")

try:
    import numpy as np
    import torch
except ImportError as _e:
    print(f"SKIP: {sys.executable} cannot import {_e.name} (needed by the reference)")
    sys.exit(77)
if not os.access(DRIVER, os.X_OK):
    print(f"FAIL: {DRIVER} is not built (make tests/test_codec_seanet)")
    sys.exit(1)

sys.path[:0] = [os.path.join(SRC, "tools"), os.path.join(SRC, "tests", "ref")]
import secodec as ref  # noqa: E402
from gguf import GGUFReader, GGUFWriter  # noqa: E402
from checks import FAILS, check, log  # noqa: E402

TOL = 1e-4        # max abs difference, fp32 C vs fp32 PyTorch (the bound)
T0 = time.time()
torch.set_num_threads(1)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def c_call(mode, model, x, tmp):
    inp, out = os.path.join(tmp, "in.f32"), os.path.join(tmp, "out.f32")
    np.asarray(x, dtype="<f4").tofile(inp)
    r = run([DRIVER, mode, model, inp, out, "1"])
    if r.returncode != 0:
        return None, r.stderr.strip()
    return np.fromfile(out, dtype="<f4"), ""


def signal(L, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(L)
    x = 0.4 * np.sin(2 * np.pi * 220 * t / 16000 + seed) + 0.2 * rng.standard_normal(L)
    return x.astype(np.float32)


def compare(tag, model_ref, gguf, D, hop, lengths, tmp, worst):
    for L in lengths:
        x = signal(L, L)
        T = -(-L // hop)
        z_ref = model_ref.encode_latents(x)
        z_c, err = c_call("encode", gguf, x, tmp)
        if z_c is None:
            check(False, f"{tag} L={L}: C encoder failed: {err}")
            continue
        ok_shape = z_ref.shape == (T, D) and z_c.size == T * D
        check(ok_shape, f"{tag} L={L}: latents [{T}, {D}] (ref {list(z_ref.shape)}, C {z_c.size} values)")
        if not ok_shape:
            continue
        dz = float(np.max(np.abs(z_c.reshape(T, D) - z_ref)))
        y_ref = model_ref.decode_latents(z_ref)
        y_c, err = c_call("decode", gguf, z_ref, tmp)
        if y_c is None:
            check(False, f"{tag} L={L}: C decoder failed: {err}")
            continue
        dy = float(np.max(np.abs(y_c - y_ref))) if y_c.size == y_ref.size == T * hop else float("inf")
        worst[0], worst[1] = max(worst[0], dz), max(worst[1], dy)
        check(dz <= TOL and dy <= TOL,
              f"{tag} L={L}: T={T}, max|dz| {dz:.2e} (|z| <= {np.abs(z_ref).max():.2f}), "
              f"max|dy| {dy:.2e} over {T * hop} samples (|y| <= {np.abs(y_ref).max():.2f})")


def model_from_gguf(path, cfg):
    """The reference with the network weights read back from a GGUF file (any float type).
    PyTorch's random init is skipped (every parameter is overwritten): 3 s saved at 104M."""
    saved = torch.nn.init.kaiming_uniform_, torch.nn.init.uniform_
    torch.nn.init.kaiming_uniform_ = torch.nn.init.uniform_ = lambda t, *a, **k: t
    try:
        model = ref.SECodecRef(cfg)
    finally:
        torch.nn.init.kaiming_uniform_, torch.nn.init.uniform_ = saved
    r = GGUFReader(path)
    with torch.no_grad():
        for t in r.tensors:
            if not t.name.startswith(("encoder.", "decoder.")):
                continue
            a = torch.from_numpy(np.array(t.numpy(), dtype=np.float32))
            parent, leaf = t.name.rsplit(".", 1)
            mod = model.get_submodule(parent)
            if leaf == "weight" and hasattr(mod, "weight_g"):
                # keep weight norm, with g = ||w|| along dim 0 so that g v / ||v|| = w
                mod.weight_v.copy_(a)
                mod.weight_g.copy_(a.flatten(1).norm(dim=1).reshape(mod.weight_g.shape))
            else:
                getattr(mod, leaf).copy_(a)
    model.eval()
    return model


def main():
    worst = [0.0, 0.0]
    with tempfile.TemporaryDirectory(prefix="secodec_parity.") as tmp:
        # ---- model A: reference checkpoint + config.json -> converter ----
        cfg_a = ref.make_config(n_filters=4, dimension=32, n_q=3, codebook_size=16)
        ma = ref.build_model(cfg_a, seed=11, with_quantizer=True)
        pt_a, js_a, gg_a = (os.path.join(tmp, n) for n in ("a.pt", "a.json", "a.gguf"))
        torch.save(ma.state_dict(), pt_a)
        with open(js_a, "w") as f:
            json.dump(cfg_a, f)
        r = run([sys.executable, os.path.join(SRC, "tools", "convert_secodec.py"), pt_a, gg_a, "--config", js_a])
        check(r.returncode == 0, "A: converter on a reference checkpoint " + (r.stderr.strip() or r.stdout.strip()))
        rd = GGUFReader(gg_a)
        check(list(rd.value("secodec.strides")) == [2, 4, 5, 8] and rd.value("secodec.dimension") == 32,
              "A: strides stored in encoder order [2, 4, 5, 8]")
        check(rd.value("secodec.quantizer") == "nearest" and rd.value("secodec.n_levels") == 3
              and list(rd.value("secodec.codebook_sizes")) == [16, 16, 16], "A: quantiser keys (nearest, 3 x 16)")
        cbs = ma.quantizer.codebooks()
        check(all(np.array_equal(rd.tensor("quantizer.vq.layers.%d._codebook.embed" % l).numpy(), cbs[l].numpy())
                  for l in range(3)), "A: codebooks copied exactly")
        ct = ma.decoder.model[3].convtr.convtr
        w_ref = torch._weight_norm(ct.weight_v, ct.weight_g, 0).detach().numpy()  # g v / ||v||, dim 0
        w_gg = rd.tensor("decoder.model.3.convtr.convtr.weight").numpy()
        check(np.max(np.abs(w_ref - w_gg)) < 1e-6, "A: ConvTranspose1d weight norm folded per input channel")
        compare("A", ma, gg_a, 32, 320, [1, 2, 3, 100, 319, 320, 321, 1000, 4000, 16007], tmp, worst)
        # the codebook pipeline: RVQ tokens -> sum of codewords -> decoder
        x = signal(5000, 5)
        toks = ref.rvq_encode(ma.encode_latents(x), cbs)
        zq = ref.rvq_decode(toks, cbs)
        y_c, err = c_call("decode", gg_a, zq, tmp)
        dy = float(np.max(np.abs(y_c - ma.decode_latents(zq)))) if y_c is not None else float("inf")
        check(dy <= TOL and len(set(toks[:, 0].tolist())) > 1,
              f"A: decoder on RVQ-quantised latents ({toks.shape[0]} frames x 3 levels), max|dy| {dy:.2e} {err}")

        # ---- model B: converter --random-init (+ f16 / bf16 files) ----
        gg_b, pt_b, js_b = (os.path.join(tmp, n) for n in ("b.gguf", "b.pt", "b.json"))
        b_args = ["--n-filters", "2", "--dimension", "16", "--strides", "3,2", "--lstm-layers", "1",
                  "--no-bidirectional", "--true-skip", "--n-residual-layers", "2", "--dilation-base", "3",
                  "--residual-kernel-size", "5", "--compress", "1", "--kernel-size", "5",
                  "--last-kernel-size", "3", "--seed", "5"]
        r = run([sys.executable, os.path.join(SRC, "tools", "convert_secodec.py"), "--random-init", gg_b,
                 "--save-checkpoint", pt_b, "--save-config", js_b] + b_args)
        check(r.returncode == 0, "B: converter --random-init " + (r.stderr.strip() or r.stdout.strip()))
        with open(js_b) as f:
            cfg_b = ref.make_config(json.load(f))
        mb = ref.load_model(pt_b, cfg_b)
        lens_b = [1, 2, 3, 5, 6, 7, 13, 50, 301]
        compare("B", mb, gg_b, 16, 6, lens_b, tmp, worst)
        for ty in ("f16", "bf16"):
            gg = os.path.join(tmp, "b_%s.gguf" % ty)
            r = run([sys.executable, os.path.join(SRC, "tools", "convert_secodec.py"), "--random-init", gg,
                     "--type", ty] + b_args)
            check(r.returncode == 0 and GGUFReader(gg).tensor("encoder.model.0.conv.conv.weight").type == ty,
                  f"B: {ty} file written")
            compare("B-" + ty, model_from_gguf(gg, cfg_b), gg, 16, 6, [1, 7, 301], tmp, worst)

        # ---- errors ----
        r = run([sys.executable, os.path.join(SRC, "tools", "convert_secodec.py"), pt_a, os.path.join(tmp, "x.gguf"),
                 "--config", js_b])
        check(r.returncode == 1 and "encoder.model.0.conv.conv.weight_v" in r.stderr
              and not os.path.exists(os.path.join(tmp, "x.gguf")),
              "converter: checkpoint/config mismatch fails naming the tensor")
        sd = torch.load(pt_a)
        del sd["decoder.model.1.lstm.bias_hh_l1"]
        torch.save(sd, os.path.join(tmp, "bad.pt"))
        r = run([sys.executable, os.path.join(SRC, "tools", "convert_secodec.py"), os.path.join(tmp, "bad.pt"),
                 os.path.join(tmp, "x.gguf"), "--config", js_a])
        check(r.returncode == 1 and "missing tensor 'decoder.model.1.lstm.bias_hh_l1'" in r.stderr,
              "converter: a missing LSTM bias is named")
        w = GGUFWriter()
        for k, v in rd.kv.items():
            if v.type.startswith("array"):
                w.add_array(k, v.value, v.type[6:-1])
            else:
                getattr(w, {"u32": "add_u32", "bool": "add_bool", "str": "add_string", "f32": "add_f32"}[v.type])(
                    k, v.value)
        for t in rd.tensors:
            if t.name != "encoder.model.12.conv.conv.weight":
                w.add_tensor_raw(t.name, t.type, t.ne, t.raw)
        w.write(os.path.join(tmp, "missing.gguf"))
        y, err = c_call("encode", os.path.join(tmp, "missing.gguf"), signal(400, 1), tmp)
        check(y is None and "encoder.model.12.conv.conv.weight" in err, f"C loader names a missing tensor ({err})")

        # ---- model C: default widths, short inputs ----
        gg_c = os.path.join(tmp, "c.gguf")
        t1 = time.time()
        r = run([sys.executable, os.path.join(SRC, "tools", "convert_secodec.py"), "--random-init", gg_c, "--seed", "2",
                 "--type", "f16"])
        check(r.returncode == 0, "C: default-size model (64/1024) " + (r.stderr.strip() or r.stdout.strip()))
        mc = model_from_gguf(gg_c, ref.make_config())
        log(f"     (model C made and loaded in {time.time() - t1:.1f} s)")
        compare("C", mc, gg_c, 1024, 320, [1, 319, 321, 1600], tmp, worst)
        if os.environ.get("SECODEC_BENCH"):
            secs = float(os.environ.get("SECODEC_BENCH_SECONDS", "10"))
            r = run([DRIVER, "bench", gg_c, str(secs), "3", "1"])
            log("bench C (cochlea, 1 thread): " + (r.stdout.strip() or r.stderr.strip()))
            x = signal(int(secs * 16000), 3)
            te, td = [], []
            for _ in range(3):
                t0 = time.time()
                z = mc.encode_latents(x)
                t1 = time.time()
                mc.decode_latents(z)
                te.append(t1 - t0)
                td.append(time.time() - t1)
            log(f"bench C (PyTorch reference, 1 thread): encode {sorted(te)[1]:.3f} s (RTF {sorted(te)[1] / secs:.3f}), "
                f"decode {sorted(td)[1]:.3f} s (RTF {sorted(td)[1] / secs:.3f}), median of 3")

    log(f"max |dz| {worst[0]:.2e}, max |dy| {worst[1]:.2e} over all models and lengths (bound {TOL:g}); "
        f"{time.time() - T0:.1f} s")
    if FAILS:
        log(f"{len(FAILS)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
