#!/usr/bin/env python3
"""Stage 'evaluate' of the owsm_ctc_tiny recipe: run the C program on the test set and score it.

    evaluate.py MODEL.gguf TEST_DIR OUT_DIR [--cochlea PATH] [--threads N]
                [--tasks asr,lid,x2eng,eng2x] [--precision f32|bf16|int8] [--context S]

TEST_DIR holds index.jsonl ({"id", "lang", "text", "pair": {lang: translation}, ...} a line) and
wav/ID.wav. Every hypothesis comes from `cochlea transcribe` (not from PyTorch), one run per
language and task so that the model is loaded once for many files:
  asr    speech recognition with the true language (-l LANG)             -> CER, WER
  lid    language identification (--detect-language: the most probable language at the language
         position of the first window, which is also what -l auto reports)  -> LID accuracy;
         and (-l auto --print-special) whether the first language token the model emits
         itself is right, none emitted counting as wrong                 -> "LID emitted"
  x2eng  translation of every non-English utterance into English (--task st_eng)  -> BLEU X->eng
  eng2x  translation of every English utterance into its pair language, where that language is
         a translation target of the model (--task st_XXX)                          -> BLEU eng->X
Languages or targets that the model has no token for are skipped with a warning (n/a).
Audio longer than the model's window (owsm_ctc.speech_length: 6 s for this recipe's model) is
decoded in overlapping windows with --context S seconds on each side; by default cochlea's own
(4 s for 30 s windows, 2/15 of shorter ones: 0.8 s here), which is what users get.

Writes OUT_DIR/hyp_{asr,lid,st_x2eng,st_eng2x}.jsonl (one line per utterance and task, with the
reference: `score.py OUT_DIR/hyp_*.jsonl` rescores them), OUT_DIR/results.json and
OUT_DIR/RESULTS.md (a table per language and an "all" row). Scores: see score.py. Progress goes
to stderr. Exit status 1 if any utterance failed to decode (it is then scored as an empty
hypothesis and listed in results.json), 2 on usage or setup errors.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
import score  # noqa: E402

# display order of the recipe's languages (others found in the test set follow, sorted)
RECIPE_LANGS = "eng deu fra ita spa nld por rus pol tur ara zho jpn kor".split()
TASKS = ("asr", "lid", "x2eng", "eng2x")
CHUNK = 1000  # files per cochlea run (its limit is 4096; keeps command lines short)


def log(msg):
    print(f"evaluate: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(2)


def find_cochlea(path):
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            die(f"--cochlea {path}: not an executable file")
        return os.path.abspath(path)
    cand = os.path.join(REPO, "build", "cochlea")
    if os.path.isfile(cand) and os.access(cand, os.X_OK):
        return cand
    found = shutil.which("cochlea")
    if found:
        return os.path.abspath(found)
    die(f"no cochlea program: build it ({cand}) or give --cochlea PATH")


def model_vocab(cochlea, model):
    """The model's language codes and translation targets (`transcribe --list-languages -m`)."""
    p = subprocess.run([cochlea, "transcribe", "--list-languages", "-m", model], capture_output=True)
    if p.returncode != 0:
        die(f"{cochlea} transcribe --list-languages -m {model} failed:\n"
            + p.stderr.decode("utf-8", "replace").strip())
    langs, targets = set(), set()
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"\s*\d+\s+([a-z]{3})\s", line)
        if m:
            langs.add(m.group(1))
        elif line.startswith("translation targets"):
            targets.update(line.split(":", 1)[1].split())
    if not langs:
        die(f"{model}: the model lists no language tokens")
    return langs, targets


def model_window(cochlea, model):
    """The model's window in seconds (owsm_ctc.speech_length from `cochlea info`), or None."""
    p = subprocess.run([cochlea, "info", model], capture_output=True)
    m = re.search(r"^\s*owsm_ctc\.speech_length\s+([0-9.eE+-]+)\s*$",
                  p.stdout.decode("utf-8", "replace"), re.M)
    return float(m.group(1)) if p.returncode == 0 and m else None


def read_index(test_dir):
    path = os.path.join(test_dir, "index.jsonl")
    try:
        rows = score.read_jsonl(path)
    except (OSError, ValueError) as e:
        die(str(e))
    seen = set()
    for r in rows:
        for k in ("id", "lang", "text"):
            if k not in r:
                die(f"{path}: a line has no '{k}': {json.dumps(r, ensure_ascii=False)[:200]}")
        if r["id"] in seen:
            die(f"{path}: id {r['id']} appears twice")
        seen.add(r["id"])
        wav = os.path.join(test_dir, "wav", r["id"] + ".wav")
        if not os.path.isfile(wav):
            die(f"{wav}: missing (every utterance of index.jsonl needs its WAV)")
    if not rows:
        die(f"{path}: no utterances")
    return rows


class Runner:
    """Runs `cochlea transcribe` on groups of WAVs of the test set, one line of output per file."""

    def __init__(self, cochlea, model, wav_dir, threads, precision, context, decode=()):
        self.base = [cochlea, "transcribe", "-m", model, "-q"] + list(decode)
        if context is not None:
            self.base += ["--context", f"{context:g}"]
        if threads:
            self.base += ["-t", str(threads)]
        if precision:
            self.base += ["--precision", precision]
        self.wav_dir = wav_dir
        self.failures = []

    def _run(self, args, names):
        p = subprocess.run(self.base + args + names, cwd=self.wav_dir, capture_output=True)
        out = p.stdout.decode("utf-8", "replace")
        if out.endswith("\n"):
            out = out[:-1]
        return p.returncode, out, p.stderr.decode("utf-8", "replace").strip()

    def transcribe(self, ids, args, what):
        """({id: text}, {id: error}) for the utterances `ids` run with extra options `args`; a
        file that fails gets the text "" and an error message (also kept in self.failures)."""
        texts, errors = {}, {}
        for c0 in range(0, len(ids), CHUNK):
            self._group(ids[c0:c0 + CHUNK], args, what, texts, errors, 0)
        return texts, errors

    def _group(self, ids, args, what, texts, errors, depth):
        rc, out, err = self._run(args, [i + ".wav" for i in ids])
        lines = out.split("\n")
        if rc == 0 and len(lines) == len(ids):
            texts.update(zip(ids, lines))
            return
        # cochlea goes on after a file it cannot decode and names it: "cochlea: error: ID.wav: ..."
        bad = [i for i in ids if f"cochlea: error: {i}.wav:" in err]
        log(f"{what}: the grouped run gave exit status {rc} and {len(lines) if out else 0} lines for {len(ids)} files"
            + (f"; {len(bad)} named in its errors" if bad else "")
            + (f" ({err.splitlines()[-1]})" if err else ""))
        if bad and len(bad) < len(ids) and depth < 3:
            self._group([i for i in ids if i not in set(bad)], args, what, texts, errors, depth + 1)
            self._single(bad, args, what, texts, errors)
        else:  # no file named, or a text held a newline: one run per file
            log(f"{what}: running the {len(ids)} files one by one")
            self._single(ids, args, what, texts, errors)

    def detect(self, ids, what):
        """({id: top-1 language or None}, {id: error}): `--detect-language` on the utterances `ids`."""
        preds, errors = {}, {}
        for c0 in range(0, len(ids), CHUNK):
            group = ids[c0:c0 + CHUNK]
            rc, out, err = self._run(["--detect-language"], [i + ".wav" for i in group])
            blocks, cur = {}, None
            for line in out.split("\n"):
                if len(group) > 1 and line.endswith(".wav:") and line[:-5] in group:
                    cur = line[:-5]
                    blocks[cur] = []
                elif line:
                    blocks.setdefault(cur if len(group) > 1 else group[0], []).append(line)
            for i in group:
                top = blocks.get(i)
                if top and "\t" in top[0]:
                    preds[i] = top[0].split("\t")[0]
                    continue
                rc1, out1, err1 = self._run(["--detect-language"], [i + ".wav"])
                first = out1.split("\n")[0]
                if rc1 == 0 and "\t" in first:
                    preds[i] = first.split("\t")[0]
                    continue
                msg = err1.splitlines()[-1] if err1 else f"exit status {rc1}"
                self.failures.append({"id": i, "run": what, "error": msg})
                log(f"{what}: {i}.wav: failed: {msg}")
                preds[i], errors[i] = None, msg
        return preds, errors

    def _single(self, ids, args, what, texts, errors):
        n_ok = n_bad = 0
        for i in ids:
            rc, out, err = self._run(args, [i + ".wav"])
            if rc == 0:
                texts[i] = " ".join(out.split("\n"))
                n_ok += 1
                continue
            msg = err.splitlines()[-1] if err else f"exit status {rc}"
            self.failures.append({"id": i, "run": what, "error": msg})
            log(f"{what}: {i}.wav: failed: {msg}")
            texts[i], errors[i] = "", msg
            n_bad += 1
            if n_ok == 0 and n_bad >= 3 and len(ids) > 3:
                die(f"{what}: every file fails ({msg}); command: " + " ".join(self.base + args) + " FILE")


def first_language(text, langs):
    """The first <xxx> language symbol in a --print-special text, or None."""
    for m in re.finditer(r"<([a-z]{3})>", text):
        if m.group(1) in langs:
            return m.group(1)
    return None


def lang_order(langs):
    return [lg for lg in RECIPE_LANGS if lg in langs] + sorted(set(langs) - set(RECIPE_LANGS))


def evaluate(a):
    model = os.path.abspath(a.model)
    if not os.path.isfile(model):
        die(f"{a.model}: no such model file")
    cochlea = find_cochlea(a.cochlea)
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            die(f"--tasks: unknown task '{t}' (expected {', '.join(TASKS)})")
    index = read_index(a.test_dir)
    m_langs, m_targets = model_vocab(cochlea, model)
    os.makedirs(a.out_dir, exist_ok=True)
    window = model_window(cochlea, model)
    context = a.context
    if context is not None and window is not None and not 0 <= 2 * context < window:
        die(f"--context {context:g}: must be in [0, {window / 2:g}) s for this model's {window:g} s window")
    runner = Runner(cochlea, model, os.path.join(os.path.abspath(a.test_dir), "wav"), a.threads, a.precision,
                    context, a.decode.split())
    langs = lang_order({r["lang"] for r in index})
    by_lang = {lg: [r for r in index if r["lang"] == lg] for lg in langs}
    skipped = []

    # one cochlea run per (task, source language, target): the model is loaded once for its files
    jobs = []
    if "asr" in tasks:
        for lg in langs:
            if lg not in m_langs:
                skipped.append(f"asr {lg}: the model has no <{lg}> token")
                continue
            jobs.append(("asr", lg, None, by_lang[lg], ["-l", lg]))
    if "lid" in tasks:
        jobs.append(("lid", None, None, index, ["--detect-language"]))
        jobs.append(("lid_emitted", None, None, index, ["-l", "auto", "--print-special"]))
    if "x2eng" in tasks:
        for lg in langs:
            if lg == "eng":
                continue
            utts = [r for r in by_lang[lg] if "eng" in r.get("pair", {})]
            if not utts:
                continue
            if lg not in m_langs or "eng" not in m_targets:
                skipped.append(f"x2eng {lg}: the model has no <{lg}> or no <st_eng> token")
                continue
            jobs.append(("x2eng", lg, "eng", utts, ["-l", lg, "--task", "st_eng"]))
    if "eng2x" in tasks and "eng" in by_lang:
        targets = sorted({t for r in by_lang["eng"] for t in r.get("pair", {}) if t != "eng"})
        for tg in targets:
            utts = [r for r in by_lang["eng"] if tg in r.get("pair", {})]
            if tg not in m_targets or "eng" not in m_langs:
                # pol, kor...: OWSM has no such translation target; not an error
                skipped.append(f"eng2x {tg}: not a translation target of the model ({len(utts)} utterances)")
                continue
            jobs.append(("eng2x", "eng", tg, utts, ["-l", "eng", "--task", f"st_{tg}"]))
    for s in skipped:
        log(f"skipping {s}")

    hyps = {t: [] for t in TASKS}
    lid_rows = {}
    t_all = time.time()
    for k, (task, lg, tg, utts, opts) in enumerate(jobs, 1):
        what = task + (f" {lg}" if lg and task != "eng2x" else "") + (f" ->{tg}" if tg else "")
        t0 = time.time()
        log(f"[{k}/{len(jobs)}] {what}: {len(utts)} files ...")
        if task == "lid":
            texts, errors = runner.detect([r["id"] for r in utts], what)
        else:
            texts, errors = runner.transcribe([r["id"] for r in utts], opts, what)
        for r in utts:
            h = texts[r["id"]]
            if task == "lid_emitted":  # joins the --detect-language row of the same utterance
                lid_rows[r["id"]].update({"emitted": first_language(h, m_langs), "hyp": h})
                continue
            if task == "asr":
                row = {"id": r["id"], "lang": r["lang"], "task": "asr", "ref": r["text"], "hyp": h}
            elif task == "lid":
                row = {"id": r["id"], "lang": r["lang"], "task": "lid", "pred": h}
                lid_rows[r["id"]] = row
            else:
                row = {"id": r["id"], "lang": r["lang"], "task": "st", "target": tg, "ref": r["pair"][tg], "hyp": h}
            if r["id"] in errors:
                row["error"] = errors[r["id"]]
            hyps[task].append(row)
        log(f"[{k}/{len(jobs)}] {what}: done in {time.time() - t0:.1f} s"
            + (f", {len(errors)} failed" if errors else ""))
    names = {"asr": "hyp_asr.jsonl", "lid": "hyp_lid.jsonl", "x2eng": "hyp_st_x2eng.jsonl",
             "eng2x": "hyp_st_eng2x.jsonl"}
    for task in tasks:
        with open(os.path.join(a.out_dir, names[task]), "w", encoding="utf-8") as f:
            for row in hyps[task]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    # rows: the test set's languages and any translation target outside them
    langs = lang_order(set(langs) | {row["target"] for row in hyps["eng2x"]})
    for lg in langs:
        by_lang.setdefault(lg, [])
    results = summarise(langs, by_lang, hyps)
    results["meta"] = {
        "model": model, "test_dir": os.path.abspath(a.test_dir), "cochlea": cochlea,
        "cochlea_version": version(cochlea), "threads": a.threads, "precision": a.precision or "f32",
        "window_s": window, "context_s": context, "decode": a.decode,
        "tasks": tasks, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - t_all, 1), "utterances": len(index),
        "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a (char for zho/jpn targets)|smooth:exp",
    }
    results["skipped"] = skipped
    results["failures"] = runner.failures
    with open(os.path.join(a.out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(a.out_dir, "RESULTS.md"), "w", encoding="utf-8") as f:
        f.write(markdown(langs, results))
    log(f"{len(index)} utterances, {len(jobs)} cochlea runs in {time.time() - t_all:.1f} s; "
        f"wrote {a.out_dir}/results.json and RESULTS.md")
    if runner.failures:
        log(f"{len(runner.failures)} decodes failed (scored as empty hypotheses; see results.json 'failures')")
        return 1
    return 0


def version(cochlea):
    p = subprocess.run([cochlea, "--version"], capture_output=True)
    lines = p.stdout.decode("utf-8", "replace").splitlines()
    return lines[0] if lines else None


def summarise(langs, by_lang, hyps):
    """Per-language and pooled scores from the hypothesis rows."""
    cer, wer, lid, lide, x2e, e2x = {}, {}, {}, {}, {}, {}
    for r in hyps["asr"]:
        c, w = cer.setdefault(r["lang"], score.ErrorRate()), wer.setdefault(r["lang"], score.ErrorRate())
        c.add(score.cer_units(r["ref"]), score.cer_units(r["hyp"]))
        w.add(score.wer_units(r["ref"]), score.wer_units(r["hyp"]))
    for r in hyps["lid"]:
        n = lid.setdefault(r["lang"], [0, 0])
        n[0] += r["pred"] == r["lang"]
        n[1] += 1
        if "emitted" in r:
            n = lide.setdefault(r["lang"], [0, 0])
            n[0] += r["emitted"] == r["lang"]
            n[1] += 1
    for r in hyps["x2eng"]:
        x2e.setdefault(r["lang"], score.Bleu(score.bleu_tokenizer("eng"))).add(r["ref"], r["hyp"])
    for r in hyps["eng2x"]:
        e2x.setdefault(r["target"], score.Bleu(score.bleu_tokenizer(r["target"]))).add(r["ref"], r["hyp"])

    def acc(ok_n):
        return {"correct": ok_n[0], "total": ok_n[1], "accuracy": 100.0 * ok_n[0] / ok_n[1]} if ok_n else None

    out = {"languages": {}}
    for lg in langs:
        out["languages"][lg] = {
            "utterances": len(by_lang[lg]),
            "cer": cer[lg].as_dict() if lg in cer else None,
            "wer": wer[lg].as_dict() if lg in wer and score.has_wer(lg) else None,
            "lid": acc(lid.get(lg)),
            "lid_emitted": acc(lide.get(lg)),
            "bleu_x2eng": x2e[lg].as_dict() if lg in x2e else None,
            "bleu_eng2x": e2x[lg].as_dict() if lg in e2x else None,
        }
    c_all, w_all = score.ErrorRate(), score.ErrorRate()
    for lg, c in cer.items():
        c_all.merge(c)
        if score.has_wer(lg):
            w_all.merge(wer[lg])
    x_all = score.Bleu("13a")
    for r in hyps["x2eng"]:
        x_all.add(r["ref"], r["hyp"])
    e_scores = [b.score() for b in e2x.values()]
    out["all"] = {
        "utterances": sum(len(v) for v in by_lang.values()),
        "cer": c_all.as_dict() if cer else None,
        "wer": w_all.as_dict() if w_all.utts else None,
        "lid": acc([sum(v[0] for v in lid.values()), sum(v[1] for v in lid.values())]) if lid else None,
        "lid_emitted": acc([sum(v[0] for v in lide.values()), sum(v[1] for v in lide.values())]) if lide else None,
        "bleu_x2eng": x_all.as_dict() if x_all.segments else None,
        "bleu_eng2x_mean": (sum(e_scores) / len(e_scores)) if e_scores else None,
        "bleu_eng2x_targets": sorted(e2x),
    }
    return out


def markdown(langs, res):
    def rate(d):
        return score.fmt(d["rate"] if d else None)

    def bleu(d):
        return score.fmt(d["score"] if d else None)

    def lid(d):
        return score.fmt(d["accuracy"] if d else None)

    m = res["meta"]
    lines = [
        "# owsm_ctc_tiny: test set results",
        "",
        f"Model `{m['model']}`, test set `{m['test_dir']}` ({m['utterances']} utterances), decoded by "
        f"`{m['cochlea_version']}` (`cochlea transcribe`, {m['precision']}"
        + (f", `{m['decode']}`" if m.get("decode") else ", the model's default decoding") + f"), {m['date']}.",
        "",
        "| language | utterances | CER % | WER % | LID accuracy % | LID emitted % | BLEU X→eng | BLEU eng→X |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lg in langs:
        d = res["languages"][lg]
        lines.append(f"| {lg} | {d['utterances']} | {rate(d['cer'])} | {rate(d['wer'])} | {lid(d['lid'])} "
                     f"| {lid(d.get('lid_emitted'))} | {bleu(d['bleu_x2eng'])} | {bleu(d['bleu_eng2x'])} |")
    al = res["all"]
    lines.append(f"| **all** | {al['utterances']} | {rate(al['cer'])} | {rate(al['wer'])} | {lid(al['lid'])} "
                 f"| {lid(al.get('lid_emitted'))} | {bleu(al['bleu_x2eng'])} | {score.fmt(al['bleu_eng2x_mean'])} |")
    lines += [
        "",
        "- CER / WER: edit distance over reference characters (spaces removed) / words, summed over the",
        "  corpus, after NFKC, lower case and removal of punctuation and symbols (Unicode P*, S*).",
        "  WER is n/a for zho and jpn (written without spaces); the \"all\" row pools CER over every",
        "  language and WER over the languages that have it.",
        "- LID accuracy: `--detect-language`, its most probable language (the first language token",
        "  the model emits, else the language with the most probability at the position where",
        "  language mass peaks; `-l auto` reports the same). LID emitted: `-l auto --print-special`,",
        "  the first language token the model emits itself, none emitted counting as wrong.",
        "- BLEU: corpus BLEU as sacreBLEU computes it (" + m["bleu_signature"] + "),",
        "  on the raw texts. X→eng: the language's utterances translated into English (\"all\": one",
        "  corpus of every X→eng utterance). eng→X: English utterances translated into the row's",
        "  language, where it is a translation target of the model (\"all\": mean over the targets).",
    ]
    if res["skipped"]:
        lines.append("- Not run: " + "; ".join(res["skipped"]) + ".")
    if res["failures"]:
        lines.append(f"- {len(res['failures'])} decodes failed and were scored as empty hypotheses "
                     "(results.json, \"failures\").")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="evaluate an OWSM-CTC GGUF model on the recipe's test set "
                                             "with the cochlea program")
    ap.add_argument("model", help="the model, .gguf")
    ap.add_argument("test_dir", help="directory with index.jsonl and wav/ID.wav")
    ap.add_argument("out_dir")
    ap.add_argument("--cochlea", help="the cochlea program (default: build/cochlea of this tree, then PATH)")
    ap.add_argument("--threads", type=int, help="threads per cochlea run (default: cochlea's, all CPUs)")
    ap.add_argument("--precision", choices=("f32", "bf16", "int8"), help="matrix precision (default f32)")
    ap.add_argument("--context", type=float,
                    help="long-form context in seconds (default: min(4, the model's window / 4))")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    ap.add_argument("--decode", default="", help="decoding options for cochlea transcribe, e.g. "
                    "\"--beam-size 1\" (greedy); default: the model's (its embedded LM's beam search)")
    a = ap.parse_args(argv)
    if a.threads is not None and a.threads < 1:
        ap.error("--threads must be >= 1")
    return evaluate(a)


if __name__ == "__main__":
    sys.exit(main())
