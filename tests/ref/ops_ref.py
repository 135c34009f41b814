"""PyTorch outputs of the convolution and LSTM ops for tests/ops_torch.sh.

Writes a fixture that `tests/test_ops_conv --torch FILE` compares with src/ops_conv.c and
src/ops_rnn.c, so the conventions of the C ops (and of the naive references in
tests/test_ops_conv.c) are checked against torch.nn.functional.conv1d / F.pad(mode='reflect'),
conv_transpose1d, conv2d and torch.nn.LSTM rather than against the same author's reading.

    python3 tests/ref/ops_ref.py OUT.bin

Record format (little-endian): int32 kind, int32 n_ints, n_ints x int32, int32 n_arrays, then
per array int32 length and that many float32 values.
  kind 1 conv1d:  C_in T C_out K stride dilation groups pad_left pad_right reflect; x w b y
  kind 2 convT1d: C_in T C_out K stride padding output_padding dilation groups; x w b y
  kind 3 conv2d:  C_in H W C_out kh kw sh sw ph pw; x w b y
  kind 4 LSTM:    T I H layers bidirectional has_init; x, per layer and direction
                  w_ih w_hh b_ih b_hh, [h0 c0], y h_n c_n
"""

import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def put(out, kind, ints, arrays):
    out.write(struct.pack("<ii", kind, len(ints)))
    out.write(struct.pack("<%di" % len(ints), *ints))
    out.write(struct.pack("<i", len(arrays)))
    for a in arrays:
        a = np.ascontiguousarray(a.detach().numpy() if torch.is_tensor(a) else a, dtype="<f4").ravel()
        out.write(struct.pack("<i", a.size))
        out.write(a.tobytes())


def conv1d(out, g, C_in, T, C_out, K, stride, dil, groups, pl, pr, reflect):
    x = torch.randn(C_in, T, generator=g)
    w = torch.randn(C_out, C_in // groups, K, generator=g) / (C_in // groups * K) ** 0.5
    b = torch.randn(C_out, generator=g)
    xp = F.pad(x[None], (pl, pr), mode="reflect" if reflect else "constant")
    y = F.conv1d(xp, w, b, stride=stride, dilation=dil, groups=groups)[0]
    put(out, 1, [C_in, T, C_out, K, stride, dil, groups, pl, pr, int(reflect)], [x, w, b, y])


def conv_transpose1d(out, g, C_in, T, C_out, K, stride, pad, opad, dil, groups):
    x = torch.randn(C_in, T, generator=g)
    w = torch.randn(C_in, C_out // groups, K, generator=g) / (C_in // groups * K) ** 0.5
    b = torch.randn(C_out, generator=g)
    y = F.conv_transpose1d(x[None], w, b, stride=stride, padding=pad, output_padding=opad, groups=groups,
                           dilation=dil)[0]
    put(out, 2, [C_in, T, C_out, K, stride, pad, opad, dil, groups], [x, w, b, y])


def conv2d(out, g, C_in, H, W, C_out, kh, kw, sh, sw, ph, pw):
    x = torch.randn(C_in, H, W, generator=g)
    w = torch.randn(C_out, C_in, kh, kw, generator=g) / (C_in * kh * kw) ** 0.5
    b = torch.randn(C_out, generator=g)
    y = F.conv2d(x[None], w, b, stride=(sh, sw), padding=(ph, pw))[0]
    put(out, 3, [C_in, H, W, C_out, kh, kw, sh, sw, ph, pw], [x, w, b, y])


def lstm(out, g, T, I, H, layers, bidir, init):
    m = torch.nn.LSTM(I, H, num_layers=layers, bidirectional=bool(bidir), batch_first=True)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
    nd = 2 if bidir else 1
    x = torch.randn(1, T, I, generator=g)
    arrays = [x]
    for layer in range(layers):
        for d in range(nd):
            sfx = "_l%d%s" % (layer, "_reverse" if d else "")
            arrays += [getattr(m, n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if init:
        h0 = torch.randn(layers * nd, 1, H, generator=g)
        c0 = torch.randn(layers * nd, 1, H, generator=g)
        arrays += [h0, c0]
        y, (hn, cn) = m(x, (h0, c0))
    else:
        y, (hn, cn) = m(x)
    put(out, 4, [T, I, H, layers, bidir, init], arrays + [y, hn, cn])


def main():
    g = torch.Generator().manual_seed(1234)
    with open(sys.argv[1], "wb") as out, torch.no_grad():
        # conv1d: dense, grouped, depthwise, reflect padding up to T-1, causal padding, stride > K
        conv1d(out, g, 4, 23, 6, 3, 1, 1, 1, 1, 1, False)
        conv1d(out, g, 6, 19, 4, 5, 2, 2, 2, 4, 3, True)
        conv1d(out, g, 5, 16, 10, 7, 1, 1, 5, 6, 0, False)
        conv1d(out, g, 3, 8, 3, 4, 3, 1, 3, 7, 7, True)
        conv1d(out, g, 1, 30, 8, 7, 1, 1, 1, 3, 3, True)
        conv1d(out, g, 2, 11, 3, 2, 5, 1, 1, 0, 0, False)
        # conv_transpose1d: SEANet-style upsampling, output padding, groups, dilation
        conv_transpose1d(out, g, 6, 9, 4, 8, 4, 2, 1, 1, 1)
        conv_transpose1d(out, g, 4, 7, 6, 3, 2, 1, 1, 2, 2)
        conv_transpose1d(out, g, 3, 5, 3, 5, 3, 0, 2, 1, 3)
        conv_transpose1d(out, g, 2, 1, 5, 4, 2, 0, 0, 1, 1)
        conv_transpose1d(out, g, 2, 6, 3, 2, 5, 0, 3, 1, 1)
        # conv2d: Conv2dSubsampling-like 3x3 stride 2 on odd sizes, padding, 1 input channel
        conv2d(out, g, 1, 31, 80, 8, 3, 3, 2, 2, 0, 0)
        conv2d(out, g, 8, 15, 39, 6, 3, 3, 2, 2, 0, 0)
        conv2d(out, g, 3, 9, 7, 4, 2, 4, 1, 3, 1, 2)
        # LSTM: uni/bi, 1 and 2 layers, with and without initial state
        lstm(out, g, 9, 5, 7, 1, 0, 0)
        lstm(out, g, 9, 5, 7, 1, 1, 1)
        lstm(out, g, 6, 4, 6, 2, 0, 1)
        lstm(out, g, 8, 3, 5, 2, 1, 0)
        lstm(out, g, 5, 6, 4, 3, 1, 1)


if __name__ == "__main__":
    main()
