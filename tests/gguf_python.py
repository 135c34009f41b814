"""Python writer (tools/gguf.py) -> C reader, and C writer <-> Python writer byte identity.

    gguf_python.py --test-gguf BUILD/tests/test_gguf --cochlea BUILD/cochlea --tmp DIR

1. Files with every key type and every tensor type written by tools/gguf.py (default alignment
   and alignment 64) are read by the C reader (`test_gguf dump`): every key, type, value,
   tensor shape, offset and raw byte must match what Python wrote.
2. The C writer re-creating those files (`test_gguf copy`) gives byte-identical files.
3. `cochlea quantize` to q8_0/f16/bf16/f32 gives byte-identical files to tools/gguf.py writing
   the same content with the same rules (so Q8_0, F16 and BF16 conversions agree bit for bit),
   and tools/gguf.py's reader reads the C-written files back.
"""

import argparse
import fnmatch
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import gguf  # noqa: E402
from checks import FAILS, check  # noqa: E402


# ---- 1. every type, Python -> C ------------------------------------------------------------

def ties_row(n):
    """Values that land exactly halfway between two q8_0 levels (d = 1): roundf rounds them away
    from zero, so a round-half-to-even implementation would differ."""
    r = np.array([(k % 100) + 0.5 for k in range(n)], dtype=np.float32) * np.where(np.arange(n) % 3, 1, -1)
    r[0] = 127.0
    return r.astype(np.float32)


def sample_file(alignment):
    rng = np.random.RandomState(1234 + alignment)
    w = gguf.GGUFWriter()
    expect_kv = []  # (key, type, arr_type, values)

    def kv(key, t, value, arr_type=None):
        if t == "array":
            if arr_type == "str":
                w.add_string_array(key, value)
            else:
                w.add_array(key, value, arr_type)
            expect_kv.append((key, "array", arr_type, list(value)))
        else:
            getattr(w, "add_string" if t == "str" else "add_" + t)(key, value)
            expect_kv.append((key, t, t, [value]))

    if alignment != gguf.DEFAULT_ALIGNMENT:
        w.add_alignment(alignment)
        expect_kv.append(("general.alignment", "u32", "u32", [alignment]))
    kv("general.architecture", "str", "owsm_ctc")
    kv("t.u8", "u8", 250)
    kv("t.i8", "i8", -128)
    kv("t.u16", "u16", 65535)
    kv("t.i16", "i16", -12345)
    kv("t.u32", "u32", 4294967295)
    kv("t.i32", "i32", -2147483648)
    kv("t.u64", "u64", 18446744073709551615)
    kv("t.i64", "i64", -9223372036854775808)
    kv("t.f32", "f32", 0.1)
    kv("t.f64", "f64", -1.0e-300)
    kv("t.bool", "bool", False)
    kv("t.str", "str", "ünïcode ▁tokens")
    kv("t.bytes", "str", b"\x00\x01binary\xff")
    for et, vals in [("u8", [0, 255]), ("i8", [-1, 1, 127]), ("u16", [65535]), ("i16", [-32768, 32767]),
                     ("u32", [1, 2, 3, 4294967295]), ("i32", [-7, 7]), ("u64", [2 ** 64 - 1, 0]),
                     ("i64", [-(2 ** 63), 2 ** 63 - 1]), ("f32", [1.5, -0.1, 3e38]), ("f64", [1e-300, 2.5]),
                     ("bool", [True, False, True])]:
        kv("t.arr_" + et, "array", vals, et)
    kv("t.arr_str", "array", ["<blank>", "", "▁a", "x" * 300], "str")
    kv("t.arr_empty", "array", [], "f32")
    kv("tokenizer.ggml.scores", "array", list(rng.randn(50).astype(np.float32)), "f32")

    tensors = []  # (name, type, ne, raw, values)

    def tensor(name, array, t):
        w.add_tensor(name, array, t)
        raw = gguf.encode_tensor(array, t)
        tensors.append((name, t, list(reversed(np.shape(array))), raw))

    special = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e-8, -3e-6, 6.1e-5, 1.0009765625, 1.00048828125,
                        3.4e38, np.inf, -np.inf, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -9], dtype=np.float32)
    tensor("w.f32", rng.randn(3, 5).astype(np.float32), "f32")
    tensor("w.f16", np.concatenate([special, rng.randn(16).astype(np.float32)]).reshape(2, 16), "f16")
    tensor("w.bf16", np.concatenate([special, rng.randn(8).astype(np.float32)]).reshape(2, 3, 4), "bf16")
    q = (rng.randn(5, 64) * np.array([[1], [100], [1e-3], [0], [1]])).astype(np.float32)
    q[4] = ties_row(64)
    tensor("w.q8_0", q, "q8_0")
    tensor("w.i8", rng.randint(-128, 128, size=(2, 2, 2, 3)), "i8")
    tensor("w.i16", rng.randint(-32768, 32768, size=(7,)), "i16")
    tensor("w.i32", rng.randint(-2 ** 31, 2 ** 31, size=(3, 3), dtype=np.int64), "i32")
    return w, expect_kv, tensors


def parse_dump(text):
    kvs, tensors, info = [], [], None
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "file":
            info = [int(x) for x in f[1:]]
        elif f[0] == "kv":
            kvs.append((f[1], f[2], f[3], int(f[4]), f[5].split(" ") if f[5] else []))
        elif f[0] == "tensor":
            vals = np.array([float(x) for x in f[6].split(" ")], dtype=np.float64)
            tensors.append((f[1], f[2], [int(x) for x in f[3].split(",")], int(f[4]), bytes.fromhex(f[5]), vals))
    return info, kvs, tensors


def value_matches(t, got, want):
    if t == "str":
        raw = b"" if got == "-" else bytes.fromhex(got)
        return raw == (want if isinstance(want, bytes) else want.encode("utf-8"))
    if t in ("f32", "f64"):
        ref = float(np.float32(want)) if t == "f32" else float(want)
        return float(got) == ref or (np.isnan(ref) and np.isnan(float(got)))
    return int(got) == int(want)


def check_python_to_c(test_gguf, tmp):
    for alignment in (32, 64):
        w, expect_kv, expect_t = sample_file(alignment)
        path = os.path.join(tmp, "py_%d.gguf" % alignment)
        w.write(path)
        data = open(path, "rb").read()
        out = subprocess.run([test_gguf, "dump", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(out.returncode == 0, "C reader rejects the Python file (alignment %d): %s" %
              (alignment, out.stderr.decode(errors="replace")))
        if out.returncode:
            continue
        info, kvs, tensors = parse_dump(out.stdout.decode("utf-8"))
        check(info[0] == 3 and info[1] == alignment and info[3] == len(data),
              "header as C sees it: %r (alignment %d, %d bytes)" % (info, alignment, len(data)))
        check(len(kvs) == len(expect_kv), "key count %d vs %d" % (len(kvs), len(expect_kv)))
        for (key, t, at, n, vals), (ekey, et, eat, evals) in zip(kvs, expect_kv):
            ok = key == ekey and t == et and at == eat and n == len(evals)
            ok = ok and all(value_matches(at, g, e) for g, e in zip(vals, evals))
            check(ok, "key %s: C read %s %s %d %r, Python wrote %s %s %r" % (ekey, t, at, n, vals[:4], et, eat, evals[:4]))
        check(len(tensors) == len(expect_t), "tensor count")
        reader = gguf.GGUFReader(data)
        for (name, t, ne, off, raw, vals), (ename, et, ene, eraw) in zip(tensors, expect_t):
            check(name == ename and t == et and ne == ene, "tensor %s: %s %r vs %s %r" % (ename, t, ne, et, ene))
            check(off % alignment == 0, "tensor %s offset %d not aligned to %d" % (name, off, alignment))
            check(raw == eraw, "tensor %s: raw bytes differ between C and Python" % name)
            pv = reader.tensor(name).numpy().astype(np.float64).reshape(-1)
            if t == "i32":
                pv = pv.astype(np.float32).astype(np.float64)
            same = np.array_equal(vals, pv) or np.allclose(vals, pv, rtol=1e-7, atol=0, equal_nan=True)
            check(same, "tensor %s: values converted by C differ from the Python reader" % name)

        # 2. the C writer re-creates the file byte for byte
        copy = os.path.join(tmp, "c_%d.gguf" % alignment)
        out = subprocess.run([test_gguf, "copy", path, copy], stderr=subprocess.PIPE)
        check(out.returncode == 0, "C copy failed: %s" % out.stderr.decode(errors="replace"))
        if out.returncode == 0:
            cdata = open(copy, "rb").read()
            check(cdata == data, "C writer output (%d bytes) differs from the Python writer's (%d bytes)%s" %
                  (len(cdata), len(data), first_diff(cdata, data)))
        print("python -> C, alignment %d: %d keys, %d tensors checked" % (alignment, len(kvs), len(tensors)))


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return " (first difference at byte %d)" % i
    return ""


# ---- 3. quantize: C vs Python, byte for byte -----------------------------------------------

def choose(name, t, ne, target, keep):
    """tools-side copy of gguf_quantize_choose (src/gguf.h)."""
    if t not in ("f32", "f16", "bf16", "q8_0") or any(fnmatch.fnmatchcase(name, k) for k in keep):
        return t
    big = sum(1 for d in ne if d > 1)
    if big < 2 or name.endswith("bias") or "norm" in name:
        return "f32"
    if target == "q8_0" and ne[0] % 32:
        return "f16"
    return target


def quant_model(tmp):
    rng = np.random.RandomState(7)
    w = gguf.GGUFWriter()
    w.add_string("general.architecture", "owsm_ctc")
    w.add_u32("owsm_ctc.block_count", 2)
    w.add_string_array("tokenizer.ggml.tokens", ["<blank>", "<unk>", "a"])
    w.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.5], "f32")
    special = np.array([0.0, -0.0, 65504.0, 65520.0, 1e-8, -3e-6, np.inf, -np.inf, 1.0 + 2 ** -8,
                        1.0 + 3 * 2 ** -9, 3.4e38, -1.00048828125] + [0.5] * 20, dtype=np.float32)
    tensors = [
        ("enc.0.w", (rng.randn(48, 96) * 0.05).astype(np.float32), "f32"),
        ("enc.0.bias", rng.randn(48).astype(np.float32), "f32"),
        ("enc.norm.weight", rng.rand(96).astype(np.float32), "f32"),
        ("enc.conv.weight", rng.randn(4, 2, 3).astype(np.float32), "f32"),
        ("dec.h.w", rng.randn(8, 64).astype(np.float32), "f16"),
        ("dec.b.w", rng.randn(4, 32).astype(np.float32), "bf16"),
        ("dec.q.w", rng.randn(2, 64).astype(np.float32), "q8_0"),
        ("special.w", np.stack([special, -special]), "f32"),
        ("ties.w", np.stack([ties_row(32), -ties_row(32)]), "f32"),
        ("tok.ids", np.arange(10, dtype=np.int32) - 5, "i32"),
    ]
    for name, a, t in tensors:
        w.add_tensor(name, a, t)
    path = os.path.join(tmp, "q_in.gguf")
    w.write(path)
    return path


def expected_quantized(src_path, target, keep):
    r = gguf.GGUFReader(src_path)
    w = gguf.GGUFWriter()
    for key, v in r.kv.items():
        t = v.type
        if t.startswith("array["):
            et = t[6:-1]
            if et == "str":
                w.add_string_array(key, v.value)
            else:
                w.add_array(key, v.value, et)
        elif t == "str":
            w.add_string(key, v.value)
        else:
            getattr(w, "add_" + t)(key, v.value)
    w.add_u32("general.file_type", gguf.FILE_TYPES[target])
    for t in r.tensors:
        dt = choose(t.name, t.type, t.ne, target, keep)
        if dt == t.type:
            w.add_tensor_raw(t.name, dt, t.ne, t.raw)
        else:
            w.add_tensor(t.name, t.numpy(), dt)
    return w.to_bytes()


def check_quantize(cochlea, tmp):
    src = quant_model(tmp)
    for target in ("q8_0", "f16", "bf16", "f32"):
        keep = ["special.*"] if target == "q8_0" else []  # q8_0 of inf is meaningless
        out = os.path.join(tmp, "q_%s.gguf" % target)
        cmd = [cochlea, "quantize", "-q", src, out, "--type", target] + sum((["--keep", k] for k in keep), [])
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(res.returncode == 0, "%s failed: %s" % (" ".join(cmd), res.stderr.decode(errors="replace")))
        if res.returncode:
            continue
        got = open(out, "rb").read()
        want = expected_quantized(src, target, keep)
        check(got == want, "quantize --type %s: C output (%d bytes) differs from tools/gguf.py (%d bytes)%s" %
              (target, len(got), len(want), first_diff(got, want)))
        r = gguf.GGUFReader(got)
        check(r.value("general.file_type") == gguf.FILE_TYPES[target], "general.file_type for %s" % target)
        check(r.tensor("enc.norm.weight").type == "f32" and r.tensor("enc.0.bias").type == "f32",
              "norms/biases stay f32 for %s" % target)
        print("quantize --type %s: %d bytes, identical to tools/gguf.py" % (target, len(got)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--test-gguf", required=True)
    ap.add_argument("--cochlea", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    check_python_to_c(a.test_gguf, a.tmp)
    check_quantize(a.cochlea, a.tmp)
    if FAILS:
        print("%d failure(s)" % len(FAILS))
        return 1
    print("all GGUF Python/C checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
