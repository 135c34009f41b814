#!/bin/sh
# download_owsm_ctc.sh - fetch a released OWSM-CTC model from Hugging Face and convert it to GGUF.
#
#   sh tools/download_owsm_ctc.sh [v3.1|v3.2|v4] [OUTDIR] [f32|f16|bf16|q8_0]
#
#   v3.1 -> espnet/owsm_ctc_v3.1_1B, v3.2 -> espnet/owsm_ctc_v3.2_ft_1B, v4 -> espnet/owsm_ctc_v4_1B
#   OUTDIR defaults to models/owsm_ctc_<version>; the type of the weight matrices to f32.
#   Writes OUTDIR/hf/ (the ESPnet files) and OUTDIR/owsm_ctc_<version>-<type>.gguf.
#
# For users with internet access. It cannot be exercised in this project's offline build and CI:
# the converter it calls is tested by tests/owsm_convert.sh on generated checkpoints instead.
#
# How: the file list comes from the Hugging Face API (GET $HF_ENDPOINT/api/models/REPO, field
# "siblings"); the small files (*.yaml, *.model, *.npz, *.md) and one model file (*.pth) are
# fetched with curl from $HF_ENDPOINT/REPO/resolve/main/PATH. When the repository holds several
# .pth files (v3.1 has the paper's 40-epoch and a 45-epoch average), the one named by meta.yaml
# (what ESPnet's from_pretrained loads) is used; set OWSM_PTH=path/in/repo to choose another.
# Private mirrors: set HF_ENDPOINT (default https://huggingface.co) and, if needed, HF_TOKEN.
# Files already present are kept; an interrupted download (FILE.part) resumes when run again.
# Needs curl and a Python 3 with numpy, PyYAML and torch ($PYTHON, default /usr/bin/python3 when
# it exists).
set -eu

ver=${1:-v3.1}
case "$ver" in
v3.1) repo=espnet/owsm_ctc_v3.1_1B ;;
v3.2) repo=espnet/owsm_ctc_v3.2_ft_1B ;;
v4) repo=espnet/owsm_ctc_v4_1B ;;
*) echo "usage: $0 [v3.1|v3.2|v4] [OUTDIR] [f32|f16|bf16|q8_0]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/../models/owsm_ctc_$ver}
type=${3:-f32}
case "$type" in f32|f16|bf16|q8_0) ;; *) echo "$0: unknown type '$type'" >&2; exit 2 ;; esac
endpoint=${HF_ENDPOINT:-https://huggingface.co}
if [ -z "${PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
command -v curl >/dev/null 2>&1 || { echo "$0: curl is needed" >&2; exit 1; }

fetch() { # fetch URL FILE [curl options]: download to FILE.part (resumed), then rename
	url=$1 dst=$2
	shift 2
	if [ -f "$dst" ]; then return 0; fi
	if [ -n "${HF_TOKEN:-}" ]; then
		set -- "$@" -H "Authorization: Bearer $HF_TOKEN"
	fi
	curl -fL --retry 5 --retry-delay 3 -C - "$@" -o "$dst.part" "$url"
	mv "$dst.part" "$dst"
}

mkdir -p "$out/hf"
echo "== $repo -> $out"
rm -f "$out/hf/.files.json"
fetch "$endpoint/api/models/$repo" "$out/hf/.files.json" -s
# one path per line
"$PYTHON" -c 'import json,sys; [print(s["rfilename"]) for s in json.load(open(sys.argv[1]))["siblings"]]' \
	"$out/hf/.files.json" >"$out/hf/.files.txt"

small=$(grep -E '\.(yaml|model|npz|md)$' "$out/hf/.files.txt" || true)
for f in $small; do
	mkdir -p "$out/hf/$(dirname "$f")"
	echo "-- $f"
	fetch "$endpoint/$repo/resolve/main/$f" "$out/hf/$f" -s
done

pth=${OWSM_PTH:-}
if [ -z "$pth" ] && [ -f "$out/hf/meta.yaml" ]; then
	pth=$(sed -n 's/^[[:space:]]*s2t_model_file:[[:space:]]*//p' "$out/hf/meta.yaml" | head -n 1 | tr -d "\"'")
fi
if [ -z "$pth" ]; then
	pth=$(grep -E '\.pth$' "$out/hf/.files.txt" | sort | head -n 1 || true)
fi
[ -n "$pth" ] || { echo "$0: $repo lists no .pth model file" >&2; exit 1; }
grep -qxF "$pth" "$out/hf/.files.txt" || { echo "$0: $pth is not a file of $repo" >&2; exit 1; }
echo "-- $pth (model)"
mkdir -p "$out/hf/$(dirname "$pth")"
fetch "$endpoint/$repo/resolve/main/$pth" "$out/hf/$pth"

cfg=$(dirname "$out/hf/$pth")/config.yaml
if [ ! -f "$cfg" ] && [ -f "$out/hf/meta.yaml" ]; then
	c=$(sed -n 's/^[[:space:]]*s2t_train_config:[[:space:]]*//p' "$out/hf/meta.yaml" | head -n 1 | tr -d "\"'")
	[ -z "$c" ] || cfg=$out/hf/$c
fi
[ -f "$cfg" ] || { echo "$0: no config.yaml beside $pth" >&2; exit 1; }

gguf=$out/owsm_ctc_$ver-$type.gguf
echo "== converting to $gguf"
"$PYTHON" "$here/convert_owsm_ctc.py" "$out/hf" "$gguf" --type "$type" \
	--config "$cfg" --model "$out/hf/$pth" --name "owsm_ctc_$ver"
echo "== done: $gguf"
