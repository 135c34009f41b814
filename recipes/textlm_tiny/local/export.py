#!/usr/bin/env python3
"""export.py - stage 4 of recipes/textlm_tiny: a trained model (EXP/model.pt, EXP/config.json)
and its SentencePiece model -> one llama GGUF that src/lm loads (lm_model_load + lm_vocab_load).

Layout (llama.cpp's convert_hf_to_gguf.py, written by tools/gguf.py): general.architecture
"llama", llama.{context_length, embedding_length, block_count, feed_forward_length,
rope.dimension_count, attention.head_count, attention.head_count_kv, rope.freq_base,
attention.layer_norm_rms_epsilon, vocab_size}, general.file_type; tensors token_embd,
blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
ffn_down}.weight, output_norm.weight (output.weight only when the head is not tied), with
attn_q / attn_k rows permuted as llama.cpp does (tests/ref/llama.py permute()); matrices in
--type, norms in f32. Tokenizer as llama.cpp writes a SentencePiece model: tokenizer.ggml.model
"llama", tokens (the pieces), scores, token_type (1 normal, 2 unknown, 3 control, 5 unused,
6 byte), bos/eos/unknown ids, add_bos_token true, add_eos_token false, add_space_prefix true;
plus tokenizer.sentencepiece.model (the .model bytes, for `cochlea tokenize -m`).

Checks (exit 1 on failure): the training module equals tests/ref/llama.py's forward on the
trained weights; reading the file back with tests/ref/llama.py's load_gguf() gives the same
config and exactly the trained weights (rounded to --type); the file's logits (float64
reference) equal the training module's on those rounded weights within 1e-3.

    export.py EXP SPM_MODEL OUT.gguf [--type f16|f32|bf16] [--name NAME] [--tokens-from TOK/test.npy]
"""
import argparse
import dataclasses
import json
import os
import sys

import numpy as np
import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
from model import ref  # noqa: E402
from gguf import FILE_TYPES, GGUFWriter  # noqa: E402  (tools/, put on the path by tests/ref/llama.py)


def token_type(sp, i):
    if sp.is_unknown(i):
        return 2
    if sp.is_control(i):
        return 3
    if sp.is_unused(i):
        return 5
    if sp.is_byte(i):
        return 6
    return 1


def write(cfg, sd, sp, spm_path, out, wtype, name):
    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", name)
    w.add_string("general.license", "public domain text (KJV, WEB); model: same terms as Cochlea")
    w.add_u32("llama.context_length", cfg.ctx)
    w.add_u32("llama.embedding_length", cfg.d)
    w.add_u32("llama.block_count", cfg.layers)
    w.add_u32("llama.feed_forward_length", cfg.ff)
    w.add_u32("llama.rope.dimension_count", cfg.head_dim)
    w.add_u32("llama.attention.head_count", cfg.heads)
    w.add_u32("llama.attention.head_count_kv", cfg.kv_heads)
    w.add_f32("llama.rope.freq_base", cfg.rope_base)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", cfg.eps)
    w.add_u32("llama.vocab_size", cfg.vocab)
    w.add_u32("general.file_type", FILE_TYPES[wtype])
    n = sp.vocab_size()
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string_array("tokenizer.ggml.tokens", [sp.id_to_piece(i) for i in range(n)])
    w.add_array("tokenizer.ggml.scores", [float(sp.get_score(i)) for i in range(n)], "f32")
    w.add_array("tokenizer.ggml.token_type", [token_type(sp, i) for i in range(n)], "i32")
    w.add_u32("tokenizer.ggml.bos_token_id", sp.bos_id())
    w.add_u32("tokenizer.ggml.eos_token_id", sp.eos_id())
    w.add_u32("tokenizer.ggml.unknown_token_id", sp.unk_id())
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    w.add_bool("tokenizer.ggml.add_space_prefix", True)
    w.add_array("tokenizer.sentencepiece.model", np.frombuffer(open(spm_path, "rb").read(), dtype=np.uint8), "u8")

    def t(k):
        return sd[k].detach().cpu().numpy().astype(np.float32)

    w.add_tensor("token_embd.weight", t("model.embed_tokens.weight"), wtype)
    for i in range(cfg.layers):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", t(p + "input_layernorm.weight"), "f32")
        w.add_tensor(b + "attn_q.weight", ref.permute(t(p + "self_attn.q_proj.weight"), cfg.heads), wtype)
        w.add_tensor(b + "attn_k.weight", ref.permute(t(p + "self_attn.k_proj.weight"), cfg.kv_heads), wtype)
        w.add_tensor(b + "attn_v.weight", t(p + "self_attn.v_proj.weight"), wtype)
        w.add_tensor(b + "attn_output.weight", t(p + "self_attn.o_proj.weight"), wtype)
        w.add_tensor(b + "ffn_norm.weight", t(p + "post_attention_layernorm.weight"), "f32")
        w.add_tensor(b + "ffn_gate.weight", t(p + "mlp.gate_proj.weight"), wtype)
        w.add_tensor(b + "ffn_up.weight", t(p + "mlp.up_proj.weight"), wtype)
        w.add_tensor(b + "ffn_down.weight", t(p + "mlp.down_proj.weight"), wtype)
    w.add_tensor("output_norm.weight", t("model.norm.weight"), "f32")
    if not cfg.tied:
        w.add_tensor("output.weight", t("lm_head.weight"), wtype)
    w.write(out)


def rounded(sd, wtype):
    """The weights as the file stores them: matrices rounded to wtype, vectors f32."""
    conv = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[wtype]
    return {k: (v.to(conv) if v.dim() == 2 else v).float() for k, v in sd.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exp")
    ap.add_argument("spm")
    ap.add_argument("out")
    ap.add_argument("--type", default="f16", choices=["f32", "f16", "bf16"])
    ap.add_argument("--name", default="textlm-tiny")
    ap.add_argument("--tokens-from", help="a .npy token stream for the parity prompt (default: a fixed sentence)")
    a = ap.parse_args()
    cfg = M.Config(**json.load(open(os.path.join(a.exp, "config.json"))))
    sd = torch.load(os.path.join(a.exp, "model.pt"), map_location="cpu")
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    if sp.vocab_size() != cfg.vocab:
        sys.exit("export.py: the tokenizer has %d pieces, the model %d" % (sp.vocab_size(), cfg.vocab))
    model = M.Llama(cfg)
    model.load_state_dict(sd)
    if a.tokens_from:
        toks = [int(t) for t in np.load(a.tokens_from)[:min(64, cfg.ctx)]]
    else:
        toks = [sp.bos_id()] + sp.encode("In the beginning God created the heaven and the earth.")
    d0 = M.check_parity(model, toks)
    print("export.py: training module vs tests/ref/llama.py: max |dlogit| %.2e" % d0, file=sys.stderr)

    write(cfg, sd, sp, a.spm, a.out, a.type, a.name)
    fcfg, fsd = ref.load_gguf(a.out)
    def f32(c):  # the file stores eps and rope base as f32
        return {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in dataclasses.asdict(c).items()}

    if f32(fcfg) != f32(cfg):
        sys.exit("export.py: config read back %s differs from %s" % (fcfg, cfg))
    want = rounded(sd, a.type)
    if set(fsd) != set(want):
        sys.exit("export.py: tensors read back differ: %s" % sorted(set(fsd) ^ set(want)))
    worst = max(float((fsd[k] - want[k].double()).abs().max()) for k in want)
    if worst != 0.0:
        sys.exit("export.py: weights read back differ from the trained ones by %g" % worst)
    model.load_state_dict(want)
    d1 = M.check_parity(model, toks)  # the module on the file's weights vs the reference reading the file
    flog = ref.forward(fcfg, fsd, toks)
    with torch.no_grad():
        mlog = model(torch.as_tensor([toks]))[0].double()
    d2 = float((flog - mlog).abs().max())
    if not d2 <= 1e-3:
        sys.exit("export.py: logits of the file differ from the model's by %g" % d2)
    size = os.path.getsize(a.out)
    print("export.py: %s: %s, %d parameters, %s weights, %d bytes; weights read back exact, logits %.2e / %.2e" %
          (a.out, cfg, M.n_params(model), a.type, size, d1, d2), file=sys.stderr)


if __name__ == "__main__":
    main()
