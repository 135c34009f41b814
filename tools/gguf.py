"""gguf.py - Cochlea's GGUF v3 writer and reader (numpy only).

The writer follows the same layout rules as ggml and Cochlea's C writer (src/gguf_write.c), so
the same keys and tensors added in the same order give byte-identical files:

    "GGUF", u32 version 3, u64 n_tensors, u64 n_kv,
    keys in the order they were first set (setting a key again replaces its value in place),
    tensor infos in the order they were added (offsets relative to the data section),
    zero padding to the alignment, then each tensor's data followed by zero padding.

Tensor types: f32, f16, bf16, q8_0 (ggml's block of one fp16 scale and 32 int8 values,
d = max|x| / 127, q = round-half-away(x / d)), i8, i16, i32. Arrays handed to add_tensor are in
PyTorch order (outermost dimension first); GGUF stores ne reversed (ne[0] innermost).

    w = GGUFWriter()
    w.add_string("general.architecture", "owsm_ctc")
    w.add_u32("owsm_ctc.n_mels", 80)
    w.add_array("tokenizer.ggml.scores", scores, "f32")
    w.add_string_array("tokenizer.ggml.tokens", tokens)
    w.add_tensor("encoder.embed.out.weight", weight, "q8_0")
    w.write("model.gguf")

    r = GGUFReader("model.gguf")
    r.kv["owsm_ctc.n_mels"]            # -> GGUFValue(type, value)
    r.tensor("encoder.embed.out.weight").numpy()   # float32, PyTorch order
"""

import os
import struct
from collections import OrderedDict, namedtuple

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32
QK8_0 = 32

# key-value types (GGUF spec ids)
VALUE_TYPES = OrderedDict([
    ("u8", 0), ("i8", 1), ("u16", 2), ("i16", 3), ("u32", 4), ("i32", 5), ("f32", 6),
    ("bool", 7), ("str", 8), ("array", 9), ("u64", 10), ("i64", 11), ("f64", 12),
])
VALUE_TYPE_NAMES = {v: k for k, v in VALUE_TYPES.items()}
_NUMPY_OF = {
    "u8": "<u1", "i8": "<i1", "u16": "<u2", "i16": "<i2", "u32": "<u4", "i32": "<i4",
    "f32": "<f4", "bool": "<u1", "u64": "<u8", "i64": "<i8", "f64": "<f8",
}

# tensor types (ggml ids): (id, bytes per block, elements per block)
TENSOR_TYPES = OrderedDict([
    ("f32", (0, 4, 1)), ("f16", (1, 2, 1)), ("q8_0", (8, 34, QK8_0)), ("i8", (24, 1, 1)),
    ("i16", (25, 2, 1)), ("i32", (26, 4, 1)), ("bf16", (30, 2, 1)),
])
TENSOR_TYPE_NAMES = {v[0]: k for k, v in TENSOR_TYPES.items()}

# llama.cpp's general.file_type ids
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}


class GGUFError(Exception):
    pass


# ---- element conversions (bit-exact with src/tensor.c) -----------------------------------

def f32_to_f16(x):
    """float32 -> IEEE half bits (uint16), round to nearest even, like f32_to_fp16."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16).view(np.uint16)


def f16_to_f32(h):
    return np.asarray(h, dtype=np.uint16).view(np.float16).astype(np.float32)


def f32_to_bf16(x):
    """float32 -> bfloat16 bits: round to nearest even; NaN stays a quiet NaN (f32_to_bf16)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    quiet = (u >> 16) | 0x40
    return np.where(nan, quiet, rounded).astype(np.uint16)


def bf16_to_f32(h):
    return (np.asarray(h, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _roundf(v):
    """C roundf (halves away from zero) of float32 values, exactly (float64 holds |v| + 0.5)."""
    a = np.floor(np.abs(v).astype(np.float64) + 0.5)
    return np.where(v < 0, -a, a)


def q8_0_quantize(x):
    """float32 values (count a multiple of 32) -> ggml Q8_0 blocks as bytes (q8_0_quantize)."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if x.size % QK8_0:
        raise GGUFError("q8_0 needs a multiple of %d values, got %d" % (QK8_0, x.size))
    b = x.reshape(-1, QK8_0)
    amax = np.max(np.abs(b), axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    ids = np.zeros_like(d)
    np.divide(np.float32(1.0), d, out=ids, where=d != 0)
    q = _roundf(b * ids[:, None]).astype(np.int8)
    out = np.zeros(b.shape[0], dtype=[("d", "<u2"), ("qs", "i1", (QK8_0,))])
    out["d"] = f32_to_f16(d)
    out["qs"] = q
    return out.tobytes()


def q8_0_dequantize(raw, n):
    blocks = np.frombuffer(raw, dtype=[("d", "<u2"), ("qs", "i1", (QK8_0,))], count=n // QK8_0)
    d = f16_to_f32(blocks["d"])
    return (d[:, None] * blocks["qs"].astype(np.float32)).reshape(-1)


def tensor_nbytes(type_name, ne):
    _, bs, per = TENSOR_TYPES[type_name]
    if ne[0] % per:
        raise GGUFError("ne[0] = %d is not a multiple of the %s block size %d" % (ne[0], type_name, per))
    n = 1
    for d in ne:
        n *= int(d)
    return n // per * bs


def encode_tensor(array, type_name):
    """Raw GGUF bytes of a numpy array stored as type_name."""
    a = np.asarray(array)
    if type_name == "f32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if type_name == "f16":
        return f32_to_f16(np.ascontiguousarray(a, dtype=np.float32)).astype("<u2").tobytes()
    if type_name == "bf16":
        return f32_to_bf16(a).astype("<u2").tobytes()
    if type_name == "q8_0":
        return q8_0_quantize(a)
    if type_name in ("i8", "i16", "i32"):
        dt = {"i8": "<i1", "i16": "<i2", "i32": "<i4"}[type_name]
        info = np.iinfo(dt)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise GGUFError("values do not fit %s" % type_name)
        return np.ascontiguousarray(a, dtype=dt).tobytes()
    raise GGUFError("unknown tensor type %r" % (type_name,))


def _pad(n, align):
    return (align - n % align) % align


def _string(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack("<Q", len(s)) + bytes(s)


# ---- writer ------------------------------------------------------------------------------

class GGUFWriter:
    def __init__(self):
        self._kv = OrderedDict()  # key -> bytes after the key (u32 type + value)
        self._tensors = []        # (name, type name, ne, raw bytes)
        self._names = set()
        self.alignment = DEFAULT_ALIGNMENT

    # keys
    def _set(self, key, blob):
        if not key:
            raise GGUFError("empty key")
        self._kv[key] = blob

    def _scalar(self, key, type_name, value):
        if key == "general.alignment":
            if type_name != "u32":
                raise GGUFError("general.alignment must be a u32")
            if value <= 0 or value & (value - 1):
                raise GGUFError("general.alignment %d is not a power of two" % value)
            self.alignment = int(value)
        if type_name == "bool":
            value = 1 if value else 0
        raw = np.array([value], dtype=_NUMPY_OF[type_name]).tobytes()
        if type_name not in ("f32", "f64"):
            if int(np.frombuffer(raw, dtype=_NUMPY_OF[type_name])[0]) != int(value):
                raise GGUFError("key %r: %r does not fit %s" % (key, value, type_name))
        self._set(key, struct.pack("<I", VALUE_TYPES[type_name]) + raw)

    def add_u8(self, key, v): self._scalar(key, "u8", v)
    def add_i8(self, key, v): self._scalar(key, "i8", v)
    def add_u16(self, key, v): self._scalar(key, "u16", v)
    def add_i16(self, key, v): self._scalar(key, "i16", v)
    def add_u32(self, key, v): self._scalar(key, "u32", v)
    def add_i32(self, key, v): self._scalar(key, "i32", v)
    def add_u64(self, key, v): self._scalar(key, "u64", v)
    def add_i64(self, key, v): self._scalar(key, "i64", v)
    def add_f32(self, key, v): self._scalar(key, "f32", v)
    def add_f64(self, key, v): self._scalar(key, "f64", v)
    def add_bool(self, key, v): self._scalar(key, "bool", v)

    def add_alignment(self, a):
        self.add_u32("general.alignment", a)

    def add_string(self, key, s):
        """A UTF-8 string (str) or raw bytes (bytes, e.g. a SentencePiece model)."""
        if key == "general.alignment":
            raise GGUFError("general.alignment must be a u32")
        self._set(key, struct.pack("<I", VALUE_TYPES["str"]) + _string(s))

    def add_array(self, key, values, elem_type):
        """An array of numbers of elem_type ("u8" ... "f64", "bool")."""
        if elem_type not in _NUMPY_OF:
            raise GGUFError("bad array element type %r (strings: add_string_array)" % (elem_type,))
        if key == "general.alignment":
            raise GGUFError("general.alignment must be a u32")
        dt = np.dtype(_NUMPY_OF[elem_type])
        if elem_type == "bool":
            a = np.asarray(values).reshape(-1).astype(bool).astype(dt)
        elif elem_type in ("f32", "f64"):
            a = np.asarray(values, dtype=np.float64).reshape(-1).astype(dt)
        else:
            flat = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)
            ints = [int(v) for v in flat]
            info = np.iinfo(dt)
            if any(v < info.min or v > info.max for v in ints):
                raise GGUFError("key %r: values do not fit %s" % (key, elem_type))
            a = np.array(ints, dtype=dt)
        self._set(key, struct.pack("<IIQ", VALUE_TYPES["array"], VALUE_TYPES[elem_type], a.size) + a.tobytes())

    def add_string_array(self, key, strings):
        parts = [struct.pack("<IIQ", VALUE_TYPES["array"], VALUE_TYPES["str"], len(strings))]
        parts.extend(_string(s) for s in strings)
        self._set(key, b"".join(parts))

    # tensors
    def copy_kv(self, reader, values=None, skip=lambda key: False):
        """Every key of a GGUFReader with its type, in order, except those skip(key) is true for;
        values (a dict) replaces the value of the keys it names."""
        for k, v in reader.kv.items():
            if skip(k):
                continue
            val = (values or {}).get(k, v.value)
            if v.type == "str":
                self.add_string(k, val)
            elif v.type == "array[str]":
                self.add_string_array(k, val)
            elif v.type.startswith("array["):
                self.add_array(k, val, v.type[6:-1])
            else:
                self._scalar(k, v.type, val)

    def add_tensor(self, name, array, type_name="f32"):
        """Store a numpy array (PyTorch order) as type_name; ne is the reversed shape. The array
        is encoded when the file is written, so a converter holds one encoded tensor at a time."""
        a = np.asarray(array)
        shape = a.shape if a.ndim else (1,)
        ne = [int(d) for d in reversed(shape)]
        self._add(name, type_name, ne, lambda: encode_tensor(a, type_name))

    def add_tensor_raw(self, name, type_name, ne, raw):
        """Store already-encoded bytes with dims ne (ggml order, ne[0] innermost)."""
        raw = bytes(raw)
        self._add(name, type_name, ne, lambda: raw)
        self._check_size(name, type_name, ne, raw)

    def _check_size(self, name, type_name, ne, raw):
        if len(raw) != tensor_nbytes(type_name, ne):
            raise GGUFError("tensor %r: %d bytes of data, expected %d" % (name, len(raw), tensor_nbytes(type_name, ne)))

    def _add(self, name, type_name, ne, produce):
        if not name or len(name.encode("utf-8")) > 255:
            raise GGUFError("bad tensor name %r" % (name,))
        if name in self._names:
            raise GGUFError("duplicate tensor name %r" % (name,))
        if type_name not in TENSOR_TYPES:
            raise GGUFError("unknown tensor type %r" % (type_name,))
        if not 1 <= len(ne) <= 4 or any(d < 1 for d in ne):
            raise GGUFError("tensor %r: bad dims %r" % (name, ne))
        if ne[0] % TENSOR_TYPES[type_name][2] != 0:
            raise GGUFError("tensor %r: ne[0] %d is not a multiple of the block size" % (name, ne[0]))
        self._names.add(name)
        self._tensors.append((name, type_name, list(ne), produce))

    def _chunks(self):
        """Yield the file's bytes in order: header, KVs, tensor infos, padding, then each
        tensor's data (encoded now) and its padding."""
        out = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv))]
        for key, blob in self._kv.items():
            out.append(_string(key))
            out.append(blob)
        offset = 0
        for name, type_name, ne, _ in self._tensors:
            n = tensor_nbytes(type_name, ne)
            out.append(_string(name))
            out.append(struct.pack("<I", len(ne)))
            out.append(struct.pack("<%dQ" % len(ne), *ne))
            out.append(struct.pack("<IQ", TENSOR_TYPES[type_name][0], offset))
            offset += n + _pad(n, self.alignment)
        size = sum(len(b) for b in out)
        out.append(b"\0" * _pad(size, self.alignment))
        yield b"".join(out)
        for name, type_name, ne, produce in self._tensors:
            raw = produce()
            self._check_size(name, type_name, ne, raw)
            yield raw
            yield b"\0" * _pad(len(raw), self.alignment)

    def to_bytes(self):
        return b"".join(self._chunks())

    def write(self, path):
        """Write the file (as path.part, then renamed), streaming one tensor at a time."""
        tmp = path + ".part"
        try:
            with open(tmp, "wb") as f:
                for chunk in self._chunks():
                    f.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


# ---- reader ------------------------------------------------------------------------------

GGUFValue = namedtuple("GGUFValue", "type value")  # type: "u32", "str", "array[f32]", ...


class GGUFTensor:
    def __init__(self, name, type_name, ne, offset, raw):
        self.name, self.type, self.ne, self.offset, self.raw = name, type_name, ne, offset, raw

    @property
    def shape(self):
        """PyTorch order (outermost first)."""
        return tuple(reversed(self.ne))

    def numpy(self):
        """The values in PyTorch order: float32 for float types (dequantized), ints for i8..i32."""
        n = int(np.prod(self.ne))
        if self.type == "f32":
            a = np.frombuffer(self.raw, dtype="<f4", count=n).astype(np.float32)
        elif self.type == "f16":
            a = f16_to_f32(np.frombuffer(self.raw, dtype="<u2", count=n))
        elif self.type == "bf16":
            a = bf16_to_f32(np.frombuffer(self.raw, dtype="<u2", count=n))
        elif self.type == "q8_0":
            a = q8_0_dequantize(self.raw, n)
        else:
            a = np.frombuffer(self.raw, dtype={"i8": "<i1", "i16": "<i2", "i32": "<i4"}[self.type], count=n)
        return a.reshape(self.shape)


class GGUFReader:
    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
        else:
            with open(source, "rb") as f:
                self.data = f.read()
        self.pos = 0
        self.kv = OrderedDict()
        self.tensors = []
        self._parse()

    def _take(self, n):
        if n > len(self.data) - self.pos:
            raise GGUFError("file ends at offset %d (need %d more bytes)" % (self.pos, n))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _u32(self):
        return struct.unpack("<I", self._take(4))[0]

    def _u64(self):
        return struct.unpack("<Q", self._take(8))[0]

    def _str(self):
        return self._take(self._u64())

    def _value(self, t):
        name = VALUE_TYPE_NAMES.get(t)
        if name is None:
            raise GGUFError("unknown value type %d" % t)
        if name == "str":
            raw = self._str()
            try:
                return "str", raw.decode("utf-8")
            except UnicodeDecodeError:
                return "str", raw
        if name == "array":
            et, n = self._u32(), self._u64()
            ename = VALUE_TYPE_NAMES.get(et)
            if ename is None or ename == "array":
                raise GGUFError("bad array element type %d" % et)
            if ename == "str":
                vals = []
                for _ in range(n):
                    raw = self._str()
                    try:
                        vals.append(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        vals.append(raw)
                return "array[str]", vals
            dt = np.dtype(_NUMPY_OF[ename])
            a = np.frombuffer(self._take(n * dt.itemsize), dtype=dt)
            return "array[%s]" % ename, a.astype(bool) if ename == "bool" else a
        v = np.frombuffer(self._take(np.dtype(_NUMPY_OF[name]).itemsize), dtype=_NUMPY_OF[name])[0]
        if name == "bool":
            return name, bool(v)
        return name, (float(v) if name in ("f32", "f64") else int(v))

    def _parse(self):
        if self._take(4) != GGUF_MAGIC:
            raise GGUFError("not a GGUF file")
        self.version = self._u32()
        if self.version not in (2, 3):
            raise GGUFError("unsupported GGUF version %d" % self.version)
        n_tensors, n_kv = self._u64(), self._u64()
        for _ in range(n_kv):
            key = self._str().decode("utf-8")
            if key in self.kv:
                raise GGUFError("duplicate key %r" % key)
            self.kv[key] = GGUFValue(*self._value(self._u32()))
        a = self.kv.get("general.alignment")
        self.alignment = a.value if a is not None else DEFAULT_ALIGNMENT
        infos = []
        for _ in range(n_tensors):
            name = self._str().decode("utf-8")
            nd = self._u32()
            if not 1 <= nd <= 4:
                raise GGUFError("tensor %r has %d dims" % (name, nd))
            ne = [self._u64() for _ in range(nd)]
            t, off = self._u32(), self._u64()
            if t not in TENSOR_TYPE_NAMES:
                raise GGUFError("tensor %r has unsupported type %d" % (name, t))
            infos.append((name, TENSOR_TYPE_NAMES[t], ne, off))
        self.data_offset = self.pos + _pad(self.pos, self.alignment)
        for name, tname, ne, off in infos:
            start = self.data_offset + off
            nb = tensor_nbytes(tname, ne)
            if start + nb > len(self.data):
                raise GGUFError("tensor %r ends past the end of the file" % name)
            self.tensors.append(GGUFTensor(name, tname, ne, start, self.data[start:start + nb]))
        self._by_name = {t.name: t for t in self.tensors}

    def tensor(self, name):
        return self._by_name[name]

    def value(self, key):
        return self.kv[key].value
