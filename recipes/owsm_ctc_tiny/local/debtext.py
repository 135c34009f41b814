#!/usr/bin/env python3
"""Stage 1b of the owsm_ctc_tiny recipe: more sentences per language from Debian's translations.

    debtext.py TEXT_DIR DEB_DIR [--per-lang N] [--packages P,P,...] [--fortunes N] [--manpages N]
               [--help-pages N] [--total N] [--rest M] [--seed S]

Tatoeba gives about 700 training sentences per language, and a model trained on them for many
epochs learns those sentences rather than the language: with the shipped model of run 8, CER on
its own training utterances was 14 % against 32 % on unseen sentences of the same voices. This
stage adds sentences from the gettext message catalogs (.mo) of a fixed list of Debian packages,
which carry translations of the same English messages into every language of the recipe (user
interface and documentation text of LibreOffice, VLC, GIMP, Inkscape, PostgreSQL, git, ...).

The packages are fetched with `apt-get download` into DEB_DIR (kept, so a rerun needs no
network; packages that cannot be fetched are skipped with a note) and read without installing
them. From every catalog of one of the recipe's languages, each translated message (msgstr) is a
candidate sentence of that language and its English original (msgid) one of English; the pair is
kept as a translation pair when both pass. A candidate is kept when it
  - after the recipe's normalisation (text.py: NFKC; Japanese in hiragana; simplified Chinese)
    is a sentence: ends in . ! ? (or the script's own full stop), has no digits, no markup,
    format directives, paths, file names or acronyms, and, for a language not written in the Latin
    alphabet, no Latin letters (espeak-ng would spell or read them as English);
  - uses only characters that occur in the language's Tatoeba training text (so the tokenizer of
    stage 3, trained on that text only, encodes it without <unk> and a model continued from the
    shipped one keeps its token list);
  - is no longer than the 98th percentile of that language's training sentences (in characters),
    so that it fits the training window;
  - is not a dev or test sentence of any language.
At most --per-lang sentences per language are kept (a seeded random choice among the candidates,
the same on every machine with the same packages).

Interface text is not the kind of sentence people say. With --fortunes N (N > 0), up to N
sentences per language are also taken from Debian's fortune cookie packages (fortunes, -min, -de,
-es, -it, -pl, -ru, -br, -zh: sayings, jokes, dialogue, quotations in English, German, Spanish,
Italian, Polish, Russian, Portuguese and Chinese). Each cookie (the text between two lines "%")
loses its attribution lines ("-- Author") and is split into sentences after . ! ? (and the CJK
full stops); a leading dialogue dash and quotes around it are dropped, and each sentence must pass the same rules
as a catalog message. They have no translation ("pair": {}). Files under an "off" directory
(the offensive sections) are never read.

French, Dutch, Turkish and Japanese have no fortunes package. With --manpages N (N > 0), up to N
sentences per language are also taken from the translated manual pages of Debian's manpages-LL
packages (German, Spanish, French, Italian, Japanese, Dutch, Polish, Brazilian Portuguese,
Russian, Turkish and Chinese; Debian has none in Korean or Arabic): prose about programs, in
whole sentences. Each page is rendered to text with groff (one paragraph per line: no line
length, no hyphenation); headings and the title lines are skipped, a tagged paragraph ("-v  Show
the version.") gives its text only, and the text is split into sentences like a cookie. A
sentence of a cased script must start with a capital letter (the rest of a tag's text often does
not) and must not read as English (pages leave some paragraphs untranslated): of its words, those
that occur in the English training text and kept sentences but not in the language's own must not
outnumber those that occur in the language's own but not in English. Then it must pass the same
rules as a catalog message. Spaces in Japanese and Chinese sentences are dropped. Pages that only
include another (.so) and links are skipped.

Korean and Arabic have no manual pages, and Korean and Chinese few sentences whose characters
all occur in the training text. With --help-pages N (N > 0), up to N sentences per language are
also taken from translated help: LibreOffice's (libreoffice-help-LL, HTML, every language of the
recipe but Arabic) and GNOME's user documentation (gnome-user-docs, Mallard pages, a directory
per locale, those of the recipe's locales read). The text of each paragraph (<p>, markup
removed, entities decoded) is split into sentences like a cookie; a sentence holding a menu path
("Format - Cells") is dropped; a sentence in the Latin alphabet must start with a capital letter
and not read as English (the manual page rule above); spaces are dropped in Japanese and
Chinese; then the rules of a catalog message apply.

With --total N (N > 0), at most N sentences per language are kept over all sources together (a
seeded random choice made after all of the above): stage 2 speaks every sentence kept, 70-100
per second on 2 cores, so this bounds its time (German alone has 35,936 with the caps of run 14).

With --rest M (M > 0, with --total), the sentences that --total left out are not lost: at most M
per language of them (another seeded choice) go to TEXT_DIR/extra_rest.jsonl, a second set of
fresh sentences for a run that continues training from a model trained on extra.jsonl. Without
it, a stale extra_rest.jsonl is removed.

With --wordnet N (N > 0), at most N English sentences come from the examples quoted in WordNet's
glosses (wordnet-base, 42,104 of three words or more: "The roof leaks badly."), first letter
made a capital and a full stop added where no end mark is; then the rules of a catalog message.
Stage 1 uses them for the language model only (lm.jsonl). With --ding N, at most N German and N
English sentences per language come from the example sentences of the Ding German-English
dictionary (trans-de-en: "Das Gericht tagt. :: The court is sitting."; entries of three words or
more that start with a capital and end with . ? or !), for the language model too.

With --dialogue N (N > 0), up to N sentences per language come from the message catalogs of the
game The Battle for Wesnoth (wesnoth-1.16-data and its campaign packages, DIALOGUE below): the
characters' lines of its campaigns ("We should find Reeve Hoban. Maybe he knows what is going on
here."), spoken language as the interface catalogs are not, in every language of the recipe
but Arabic and Dutch (few messages translated). Not in English: on the dev set the English
lines (fantasy prose) made the LM's English worse (CER 12.7 -> 13.2 %), the translations made
the other languages better. Each translated message is split into sentences like a cookie,
typographic apostrophes made plain ('), a
sentence of a Latin-script language must start with a capital letter and not read as English
(the manual page rule), then the rules of a catalog message apply.

With --essay S (S > 0), the words of Rime's Chinese word frequency list (rime-essay: essay.txt,
313,021 words of traditional Chinese with their frequencies) become fragments for the language
model: each word of two characters or more, converted to simplified characters like the
training text (opencc t2s; a word that two traditional forms share sums their frequencies), all
of its characters Chinese ones that occur in the Chinese training text and not a dev or test
sentence, is one record {"lang": "zho", "text": word, "fragment": true, "count": round(freq / S)};
a word whose count rounds to 0 is left out. ngram.py counts a fragment's n-grams without sentence
boundaries: they teach the language model which characters make words (that the syllables
"mei guo" are 美国 and not 没过), which the few Chinese sentences cannot. Not with extra.jsonl
(fragments are never spoken).

With --unknown-chars LANG:N[,LANG:N...], a sentence of LANG may hold up to N distinct characters
that LANG's training text never uses (the other rules stay). For the language model only (not
with extra.jsonl): the model cannot write those characters, but the sentences around them still
teach it which known ones follow which. Korean has far more syllable blocks than its 700
training sentences use, so most of its translated sentences hold at least one unseen block; with
kor:3 the language model gets 9,090 more Korean sentences (dev CER, Korean, 24.3 -> 22.7 %).

--out NAME writes TEXT_DIR/NAME instead of extra.jsonl (stage 1 writes lm.jsonl this way, with
no caps, for the language model of stage 3; --rest is then not allowed).

Output: TEXT_DIR/extra.jsonl, records like train.jsonl's ({"id", "lang", "text", "pair"}; ids
deb-LANGNNNNN for catalog sentences, fort-LANGNNNNN for fortunes, man-LANGNNNNN for manual
pages, help-LANGNNNNN for help pages, wn-engNNNNN for WordNet examples, ding-LANGNNNNN for Ding's,
dlg-LANGNNNNN for game dialogue, essay-zhoNNNNN for essay fragments), used for training only.
"""
import argparse
import gettext
import glob
import gzip
import html
import json
import os
import random
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import text as T  # noqa: E402

# packages whose catalogs are large and translated into most of the recipe's languages
PACKAGES = ["vlc-l10n", "gimp", "inkscape", "postgresql-15", "git", "appstream", "libgtk2.0-common",
            "systemd", "apt", "gnome-control-center-data", "evolution-data-server-common",
            "gsettings-desktop-schemas"] + [
    f"libreoffice-l10n-{c}" for c in ("ar", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "pt-br",
                                      "ru", "tr", "zh-cn")]
# the recipe's languages and the gettext locale directories that hold them
LOCALES = {"ara": ["ar"], "deu": ["de"], "fra": ["fr"], "ita": ["it"], "jpn": ["ja"], "kor": ["ko"],
           "nld": ["nl"], "pol": ["pl"], "por": ["pt", "pt_BR", "pt-BR"], "rus": ["ru"], "spa": ["es"],
           "tur": ["tr"], "zho": ["zh_CN", "zh-CN"]}
# fortune cookie packages and the language of their cookies
FORTUNES = {"fortunes": "eng", "fortunes-min": "eng", "fortunes-de": "deu", "fortunes-es": "spa",
            "fortunes-it": "ita", "fortunes-pl": "pol", "fortunes-ru": "rus", "fortunes-br": "por",
            "fortunes-zh": "zho"}
# manual page packages and the language of their pages
MANPAGES = {"manpages-de": "deu", "manpages-es": "spa", "manpages-fr": "fra", "manpages-it": "ita",
            "manpages-ja": "jpn", "manpages-nl": "nld", "manpages-pl": "pol", "manpages-pt-br": "por",
            "manpages-ru": "rus", "manpages-tr": "tur", "manpages-zh": "zho"}
# help page packages: LibreOffice's help (HTML), one language each, and GNOME's user
# documentation (Mallard), every language; the language of a page is its locale directory's
HELP = [f"libreoffice-help-{c}" for c in ("de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "pt-br",
                                          "ru", "tr", "zh-cn")] + ["gnome-user-docs"]
# where the pages are: a directory per locale under each root, pages ending in the suffix
HELP_ROOTS = ((os.path.join("usr", "share", "libreoffice", "help"), ".html"),
              (os.path.join("usr", "share", "help"), ".page"))
# game dialogue: The Battle for Wesnoth's data and campaigns, message catalogs in every language
DIALOGUE = ["wesnoth-1.16-data"] + [f"wesnoth-1.16-{c}" for c in (
    "did", "dm", "dw", "ei", "httt", "l", "low", "nr", "sof", "sota", "sotbe", "thot", "trow", "tsg", "ttb", "utbs")]
PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.S)
TAG = re.compile(r"<[^>]*>")
NON_LATIN = {"ara", "jpn", "kor", "rus", "zho"}
ENDS = ".!?。！？؟"
# markup, format directives, paths, ellipses, URLs, file names (a.b), accelerators, quotes
BAD = re.compile(r"[%{}<>_/\\|=@#$&*\[\]~`^\"+]|\.\.|…|https?:|\w\.\w|[0-9٠-٩０-９]")
ACRONYM = re.compile(r"[A-Z][A-Z]")
LATIN = re.compile(r"[A-Za-z]")
# Japanese input for kakasi: kana, kanji, CJK punctuation, ! and ? only (kakasi turns some other
# characters, an em dash for one, into different garbage from run to run)
JAPANESE = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff!?]+")


def fetch(debdir, packages):
    os.makedirs(debdir, exist_ok=True)
    have = []
    for p in packages:
        got = glob.glob(os.path.join(debdir, f"{p}_*.deb"))
        if not got:
            try:
                r = subprocess.run(["apt-get", "download", p], cwd=debdir, capture_output=True, text=True)
                rc, err = r.returncode, r.stderr
            except OSError as e:  # no apt-get on this system
                rc, err = 1, str(e)
            got = glob.glob(os.path.join(debdir, f"{p}_*.deb"))
            if rc != 0 or not got:
                msg = (err.strip().splitlines() or ["failed"])[-1]
                print(f"debtext: skipping {p}: apt-get download: {msg}", file=sys.stderr)
                continue
        have.append(sorted(got)[-1])
    return have


def catalogs(deb, tmp):
    """(locale, path) of every .mo file of the recipe's locales in one package: under
    usr/share/locale/LOCALE/LC_MESSAGES, or LOCALE/LC_MESSAGES anywhere (LibreOffice)."""
    os.makedirs(tmp, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    want = {c for cs in LOCALES.values() for c in cs}
    out = []
    for f in sorted(glob.glob(os.path.join(tmp, "**", "LC_MESSAGES", "*.mo"), recursive=True)):
        loc = f.split(os.sep)[-3]
        if loc in want:
            out.append((loc, f))
    return out


def messages(path):
    """(msgid, msgstr) pairs of one catalog (singular messages only; a msgctxt is dropped)."""
    try:
        with open(path, "rb") as f:
            cat = gettext.GNUTranslations(f)._catalog
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"debtext: skipping {path}: {e}", file=sys.stderr)
        return []
    return [(k.split("\x04")[-1], v) for k, v in cat.items()
            if isinstance(k, str) and k and isinstance(v, str) and v]


WORD = re.compile(r"\w+")
ATTRIBUTION = re.compile(r"^\s*(--|—|―|~~)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


# the legacy encoding a file of the language is read in when it is not UTF-8
LEGACY = {"zho": "gb18030", "jpn": "euc-jp"}


def decode(b, lang):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return b.decode(LEGACY.get(lang, "latin-1"))
        except UnicodeDecodeError:
            return None


def fortune_sentences(deb, lang, tmp):
    """The sentences of every cookie of one fortunes package (not yet normalised or filtered)."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    out = set()
    root = os.path.join(tmp, "usr", "share", "games", "fortunes")
    for f in sorted(glob.glob(os.path.join(root, "**"), recursive=True)):
        rel = os.path.relpath(f, root).split(os.sep)
        if (os.path.islink(f) or not os.path.isfile(f) or "off" in rel[:-1]
                or f.endswith((".dat", ".u8"))):
            continue
        with open(f, "rb") as fh:
            s = decode(fh.read(), lang)
        if s is None:
            print(f"debtext: skipping {f}: neither UTF-8 nor {LEGACY.get(lang, 'Latin-1').upper()}", file=sys.stderr)
            continue
        for cookie in re.split(r"\n%[ \t]*\n", s.replace("\r\n", "\n")):
            lines = [ln for ln in cookie.split("\n") if ln.strip() and not ATTRIBUTION.match(ln)]
            for sent in SENTENCE_END.split(" ".join(" ".join(lines).split())):
                # a leading dialogue dash, quotes around the sentence
                sent = sent.strip().lstrip("-–— ").strip("«»\"'“”„ ")
                if sent:
                    out.add(sent)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


WORDNET_EXAMPLE = re.compile(r'"([^"]+)"')


def wordnet_sentences(deb, tmp):
    """The English example sentences quoted in WordNet's glosses (wordnet-base's data.* files:
    'I can breathe better when the air is clean'), of three words or more, first letter made a
    capital, a full stop added where no end mark is (not yet normalised or filtered)."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    out = set()
    for f in sorted(glob.glob(os.path.join(tmp, "usr", "share", "wordnet", "data.*"))):
        with open(f, encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("  ") or "|" not in line:  # the licence header; no gloss
                    continue
                for q in WORDNET_EXAMPLE.findall(line.split("|", 1)[1]):
                    q = " ".join(q.split())
                    if len(q.split()) < 3 or not q[0].isalpha() or "--" in q or "_" in q:
                        continue
                    q = q[0].upper() + q[1:]
                    out.add(q if q[-1] in ".!?" else q + ".")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def ding_sentences(deb, tmp):
    """{lang: sentences} of the example sentences in the Ding German-English dictionary
    (trans-de-en: "Das Gericht tagt. :: The court is sitting."): entries whose German and English
    sides have as many |-separated parts, the parts of three words or more that start with a
    capital and end with . ? or !, alternatives split at ';', no {grammar} or [field] marks."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    out = {"deu": set(), "eng": set()}

    def sentences(side):
        for x in side.split(";"):
            x = " ".join(x.split())
            if len(x.split()) >= 3 and x[0].isupper() and x[-1] in ".?!" and not set(x) & set("{}[]"):
                yield x

    path = os.path.join(tmp, "usr", "share", "trans", "de-en")
    with open(path, encoding="utf-8", errors="replace") if os.path.isfile(path) else open(os.devnull) as fh:
        for line in fh:
            if line.startswith("#") or "::" not in line:
                continue
            de, en = line.rstrip("\n").split("::", 1)
            des, ens = de.split("|"), en.split("|")
            if len(des) != len(ens):
                continue
            for d, e in zip(des, ens):
                out["deu"].update(sentences(d))
                out["eng"].update(sentences(e))
    shutil.rmtree(tmp, ignore_errors=True)
    return out


CJK = re.compile(r"[\u4e00-\u9fff]+")


def essay_words(deb, tmp):
    """{word: frequency} of Rime's essay.txt (rime-essay: "word<TAB>frequency" lines, traditional
    Chinese), words of two characters or more (not yet converted or filtered)."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    out = {}
    path = os.path.join(tmp, "usr", "share", "rime-data", "essay.txt")
    with open(path, encoding="utf-8", errors="replace") if os.path.isfile(path) else open(os.devnull) as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].isdigit() or not CJK.fullmatch(parts[0]) or len(parts[0]) < 2:
                continue
            out[parts[0]] = out.get(parts[0], 0) + int(parts[1])
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def split_sentences(text):
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


GROFF = ["groff", "-k", "-Kutf-8", "-t", "-mandoc", "-Tutf8", "-rLL=100000n", "-rHY=0", "-P-cbou"]


def manpage_sentences(deb, lang, tmp):
    """The sentences of every manual page of one manpages-LL package (not yet normalised or
    filtered); None when groff cannot be run."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    out = set()
    root = os.path.join(tmp, "usr", "share", "man")
    for f in sorted(glob.glob(os.path.join(root, "**", "man*", "*"), recursive=True)):
        if os.path.islink(f) or not os.path.isfile(f):
            continue
        with open(f, "rb") as fh:
            b = fh.read()
        if f.endswith(".gz"):
            try:
                b = gzip.decompress(b)
            except (OSError, EOFError) as e:
                print(f"debtext: skipping {f}: {e}", file=sys.stderr)
                continue
        src = decode(b, lang)
        if src is None:
            print(f"debtext: skipping {f}: neither UTF-8 nor {LEGACY.get(lang, 'Latin-1')}", file=sys.stderr)
            continue
        if src.lstrip().startswith(".so "):  # only includes another page
            continue
        try:
            r = subprocess.run(GROFF, input=src.encode("utf-8"), capture_output=True, timeout=120)
        except OSError as e:
            print(f"debtext: cannot run groff ({e}); install groff-base", file=sys.stderr)
            return None
        except subprocess.TimeoutExpired:
            print(f"debtext: skipping {f}: groff took over 120 s", file=sys.stderr)
            continue
        for line in r.stdout.decode("utf-8", "replace").split("\n"):
            if not line[:1].isspace():  # a heading, the title and footer lines, or nothing
                continue
            # a tagged paragraph: the tag, two or more spaces, the text
            for part in re.split(r"\s{2,}", line.strip()):
                for sent in split_sentences(part):
                    if lang in ("jpn", "zho"):
                        out.add(sent.replace(" ", ""))
                    elif sent[0].isupper():
                        out.add(sent)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def dialogue_sentences(deb, tmp):
    """{lang: sentences} of the translated messages of one package's catalogs, split into
    sentences, apostrophes made plain (not yet normalised or filtered)."""
    shutil.rmtree(tmp, ignore_errors=True)
    lang_of = {c: l for l, cs in LOCALES.items() for c in cs}
    out = {}

    def put(lang, text):
        for sent in split_sentences(text.replace("\u2019", "'").replace("\u2018", "'")):
            if lang in ("jpn", "zho"):
                out.setdefault(lang, set()).add(sent.replace(" ", ""))
            elif lang in NON_LATIN or sent[0].isupper():
                out.setdefault(lang, set()).add(sent)

    for loc, path in catalogs(deb, tmp):
        for _, v in messages(path):
            put(lang_of[loc], v)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def help_sentences(deb, tmp):
    """{lang: sentences} of the paragraphs (<p>) of every help page of one package (not yet
    normalised or filtered), for the locale directories of the recipe's languages."""
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    lang_of = {c: l for l, cs in LOCALES.items() for c in cs}
    out = {}
    for root, suffix in HELP_ROOTS:
        top = os.path.join(tmp, root)
        for loc in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            lang = lang_of.get(loc)
            if lang is None:
                continue
            for f in sorted(glob.glob(os.path.join(top, loc, "**", "*" + suffix), recursive=True)):
                if os.path.islink(f) or not os.path.isfile(f):
                    continue
                with open(f, "rb") as fh:
                    page = fh.read().decode("utf-8", "replace")
                for para in PARAGRAPH.findall(page):
                    for sent in split_sentences(html.unescape(TAG.sub("", para))):
                        if " - " in sent:  # a menu path ("Format - Cells"), in every language alike
                            continue
                        if lang in ("jpn", "zho"):
                            out.setdefault(lang, set()).add(sent.replace(" ", ""))
                        elif lang in NON_LATIN or sent[0].isupper():
                            out.setdefault(lang, set()).add(sent)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def shape_ok(lang, s):
    if not s or s[-1] not in ENDS or BAD.search(s):
        return False
    if lang == "eng" or lang not in NON_LATIN:
        if ACRONYM.search(s):
            return False
    elif LATIN.search(s):
        return False
    if lang == "jpn" and not JAPANESE.fullmatch(s):
        return False
    if lang in ("jpn", "zho"):
        return len(s) >= 6
    return len(s.split()) >= 3


def convert(lang, texts):
    """text.py's convert, in chunks; a chunk whose converter loses lines (kakasi does on some
    input) is converted line by line, and a line that still fails is dropped (empty)."""
    out = []
    for i in range(0, len(texts), 500):
        part = texts[i:i + 500]
        try:
            out += T.convert(lang, part)
            continue
        except SystemExit:
            pass
        for t in part:
            try:
                out += T.convert(lang, [t])
            except SystemExit:
                out.append("")
    return out


def cap_total(out, n, seed):
    """At most n records of each language, a seeded random choice, in their original order."""
    for lang in sorted({r["lang"] for r in out}):
        k = sum(r["lang"] == lang for r in out)
        if k > n:
            print(f"debtext: {lang}: {k} sentences, {n} kept (--total)", file=sys.stderr)
    return T.cap_per_language(out, n, f"total{seed}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text", help="stage 1's output directory (train/dev/test.jsonl)")
    ap.add_argument("debs", help="where the .deb files are kept")
    ap.add_argument("--per-lang", dest="per_lang", type=int, default=1500)
    ap.add_argument("--packages", default=",".join(PACKAGES))
    ap.add_argument("--fortunes", type=int, default=0,
                    help="at most this many sentences per language from fortune cookie packages (0: none)")
    ap.add_argument("--fortune-packages", default=",".join(FORTUNES))
    ap.add_argument("--manpages", type=int, default=0,
                    help="at most this many sentences per language from translated manual pages (0: none)")
    ap.add_argument("--manpage-packages", default=",".join(MANPAGES))
    ap.add_argument("--help-pages", dest="help_pages", type=int, default=0,
                    help="at most this many sentences per language from translated help pages (0: none)")
    ap.add_argument("--help-packages", default=",".join(HELP))
    ap.add_argument("--wordnet", type=int, default=0,
                    help="at most this many English example sentences from WordNet's glosses "
                         "(wordnet-base; 0: none)")
    ap.add_argument("--ding", type=int, default=0,
                    help="at most this many German and English example sentences per language from "
                         "the Ding dictionary (trans-de-en; 0: none)")
    ap.add_argument("--dialogue", type=int, default=0,
                    help="at most this many sentences per language (not English) from game dialogue "
                         "catalogs (The Battle for Wesnoth; 0: none)")
    ap.add_argument("--dialogue-packages", default=",".join(DIALOGUE))
    ap.add_argument("--essay", type=float, default=0,
                    help="Chinese words of Rime's essay (rime-essay) as language-model fragments, "
                         "count = frequency / this (0: none)")
    ap.add_argument("--unknown-chars", dest="unknown_chars", default="",
                    help="LANG:N[,LANG:N]: a LANG sentence may hold up to N distinct characters that "
                         "LANG's training text does not use (language-model text only: not with extra.jsonl)")
    ap.add_argument("--total", type=int, default=0,
                    help="at most this many sentences per language over all sources together, a "
                         "seeded random choice made last (0: no limit; stage 2 speaks every sentence kept)")
    ap.add_argument("--rest", type=int, default=0,
                    help="with --total: at most this many per language of the sentences --total left "
                         "out go to extra_rest.jsonl (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="extra.jsonl", help="output file name in TEXT (default extra.jsonl)")
    a = ap.parse_args()
    if a.rest > 0 and a.total <= 0:
        ap.error("--rest needs --total")
    if a.out != "extra.jsonl" and a.rest > 0:
        ap.error("--rest writes extra_rest.jsonl, which belongs to extra.jsonl: not with --out")
    if os.path.basename(a.out) != a.out or not a.out.endswith(".jsonl") or \
            a.out in ("train.jsonl", "dev.jsonl", "test.jsonl", "own.jsonl", "extra_rest.jsonl"):
        ap.error(f"--out {a.out}: a new .jsonl file name in TEXT (not a split's)")
    if a.essay > 0 and a.out == "extra.jsonl":
        ap.error("--essay writes word fragments for the language model, never spoken: use --out")
    if a.essay > 0 and a.total > 0:
        ap.error("--essay and --total: fragments are not sentences to cap")
    unknown = {}
    for item in [x for x in a.unknown_chars.split(",") if x]:
        lang, _, n = item.partition(":")
        if lang not in LOCALES or not n.isdigit():
            ap.error(f"--unknown-chars {item}: LANG:N with LANG one of {','.join(sorted(LOCALES))} "
                     "and N a number of characters")
        unknown[lang] = int(n)
    if unknown and a.out == "extra.jsonl":
        ap.error("--unknown-chars: sentences with characters the tokenizer never saw are for the "
                 "language model, never spoken: use --out")
    def package_list(flag, value, wanted, known):
        """The packages named in value (comma-separated) when their source is wanted, each one
        of known (else a clear error naming flag)."""
        pkgs = [p for p in value.split(",") if p] if wanted else []
        for p in pkgs:
            if p not in known:
                raise SystemExit(f"debtext: {flag}: {p} is not one of " + ",".join(known))
        return pkgs

    fort_pkgs = package_list("--fortune-packages", a.fortune_packages, a.fortunes > 0, FORTUNES)
    man_pkgs = package_list("--manpage-packages", a.manpage_packages, a.manpages > 0, MANPAGES)
    dlg_pkgs = package_list("--dialogue-packages", a.dialogue_packages, a.dialogue > 0, DIALOGUE)
    help_pkgs = package_list("--help-packages", a.help_packages, a.help_pages > 0, HELP)

    chars, lens, held = {}, {}, set()
    train = []
    for split in ("train", "dev", "test"):
        for line in open(os.path.join(a.text, f"{split}.jsonl"), encoding="utf-8"):
            r = json.loads(line)
            if split == "train":
                train.append(r)
                chars.setdefault(r["lang"], set()).update(r["text"])
                lens.setdefault(r["lang"], []).append(len(r["text"]))
            else:
                held.add(r["text"])
    maxlen = {l: sorted(v)[int(0.98 * (len(v) - 1))] for l, v in lens.items()}

    debs = fetch(a.debs, [p for p in a.packages.split(",") if p])
    if not debs:
        raise SystemExit("debtext: no package could be fetched (apt-get download); "
                         "run without the extra text (EXTRA=0) or fetch them into " + a.debs)
    lang_of = {c: l for l, cs in LOCALES.items() for c in cs}
    raw = {}  # lang -> list of (text, english original)
    tmp = os.path.join(a.debs, "x")
    for deb in debs:
        shutil.rmtree(tmp, ignore_errors=True)
        for loc, path in catalogs(deb, tmp):
            lang = lang_of[loc]
            for k, v in messages(path):
                raw.setdefault(lang, []).append((v, k))
    shutil.rmtree(tmp, ignore_errors=True)

    def keep(lang, s):
        return (shape_ok(lang, s) and len(s) <= maxlen.get(lang, 0) and s not in held
                and len(set(s.replace(" ", "")) - chars.get(lang, set())) <= unknown.get(lang, 0))

    # English originals: normalised once (text.py's normalisation of English is norm() alone)
    eng_src = sorted({k for v in raw.values() for _, k in v if shape_ok("eng", T.norm(k))})
    eng_norm = dict(zip(eng_src, convert("eng", eng_src)))
    eng_ok = {k: e for k, e in eng_norm.items() if keep("eng", e)}
    rng = random.Random(a.seed)
    out = []
    eng_pool = {}  # English sentence -> its translations that passed
    for lang in sorted(raw):
        # the shape test before the (slow, line-fragile) converters too, on the NFKC text
        pairs = sorted({(v, k) for v, k in raw[lang] if shape_ok(lang, T.norm(v))})
        conv = convert(lang, [v for v, _ in pairs])
        cand = {}
        for (v, k), x in zip(pairs, conv):
            if "\ufffd" in x or not keep(lang, x):
                continue
            e = eng_ok.get(k)
            cand.setdefault(x, e)
            if e is not None:
                eng_pool.setdefault(e, {}).setdefault(lang, x)
        texts = sorted(cand)
        rng.shuffle(texts)
        for i, x in enumerate(texts[:a.per_lang]):
            e = cand[x]
            out.append({"id": f"deb-{lang}{i:05d}", "lang": lang, "text": x,
                        "pair": {"eng": e} if e else {}})
        print(f"debtext: {lang}: {len(cand)} candidates, {min(len(texts), a.per_lang)} kept",
              file=sys.stderr)
    eng = sorted(set(eng_ok.values()))
    rng.shuffle(eng)
    for i, e in enumerate(eng[:a.per_lang]):
        out.append({"id": f"deb-eng{i:05d}", "lang": "eng", "text": e, "pair": eng_pool.get(e, {})})
    print(f"debtext: eng: {len(eng)} candidates, {min(len(eng), a.per_lang)} kept", file=sys.stderr)

    def add(kind, prefix, langs, cap, seed, foreign=lambda lang, x: False):
        """Up to cap sentences per language of {lang: sentences}, in a seeded random choice."""
        taken = {r["text"] for r in out}
        frng = random.Random(f"{seed}{a.seed}")
        for lang in sorted(langs):
            ss = sorted(s for s in langs[lang] if shape_ok(lang, T.norm(s)))
            texts = sorted({x for x in convert(lang, ss)
                            if "\ufffd" not in x and keep(lang, x) and x not in taken
                            and not foreign(lang, x)})
            frng.shuffle(texts)
            for i, x in enumerate(texts[:cap]):
                out.append({"id": f"{prefix}-{lang}{i:05d}", "lang": lang, "text": x, "pair": {}})
            print(f"debtext: {kind} {lang}: {len(texts)} candidates, {min(len(texts), cap)} kept",
                  file=sys.stderr)

    if fort_pkgs:
        fort = {}  # lang -> sentences
        for deb in fetch(a.debs, fort_pkgs):
            p = os.path.basename(deb).split("_")[0]
            fort.setdefault(FORTUNES[p], set()).update(fortune_sentences(deb, FORTUNES[p], tmp))
        add("fortunes", "fort", fort, a.fortunes, "fortunes")
    vocab = {}

    def english(lang, s):
        """Whether a sentence of a Latin-script language reads as English (manual and help pages
        leave some paragraphs untranslated): more of its words are known English words that the
        language does not use than the other way round (vocab: the words of each language's
        training text and of the sentences kept before this source)."""
        if lang == "eng" or lang in NON_LATIN:
            return False
        own, eng_vocab = vocab.get(lang, set()), vocab.get("eng", set())
        ws = WORD.findall(s.lower())
        return sum(w in eng_vocab and w not in own for w in ws) > sum(w in own and w not in eng_vocab for w in ws)

    def words():
        vocab.clear()
        for r in train + out:
            vocab.setdefault(r["lang"], set()).update(WORD.findall(r["text"].lower()))

    if man_pkgs:
        man = {}
        for deb in fetch(a.debs, man_pkgs):
            p = os.path.basename(deb).split("_")[0]
            got = manpage_sentences(deb, MANPAGES[p], tmp)
            if got is None:
                raise SystemExit("debtext: --manpages needs groff (Debian package groff-base)")
            man.setdefault(MANPAGES[p], set()).update(got)
        words()
        add("manpages", "man", man, a.manpages, "manpages", english)
    def gather(pkgs, reader):
        """{lang: sentences} that reader(deb, tmp) finds in the packages, merged."""
        got = {}
        for deb in fetch(a.debs, pkgs):
            for lang, ss in reader(deb, tmp).items():
                got.setdefault(lang, set()).update(ss)
        return got

    if help_pkgs:
        hlp = gather(help_pkgs, help_sentences)
        words()
        add("help pages", "help", hlp, a.help_pages, "help", english)
    if a.wordnet > 0:
        wn = {}
        for deb in fetch(a.debs, ["wordnet-base"]):
            wn.setdefault("eng", set()).update(wordnet_sentences(deb, tmp))
        add("WordNet examples", "wn", wn, a.wordnet, "wordnet")
    if a.ding > 0:
        ding = gather(["trans-de-en"], ding_sentences)
        add("Ding examples", "ding", ding, a.ding, "ding")
    if dlg_pkgs:
        dlg = gather(dlg_pkgs, dialogue_sentences)
        words()
        add("dialogue", "dlg", dlg, a.dialogue, "dialogue", english)
    if a.essay > 0:
        freq = {}
        for deb in fetch(a.debs, ["rime-essay"]):
            freq.update(essay_words(deb, tmp))
        src = sorted(freq)
        simp = {}
        for w, x in zip(src, convert("zho", src)):
            if CJK.fullmatch(x) and set(x) <= chars.get("zho", set()) and x not in held:
                simp[x] = simp.get(x, 0) + freq[w]
        n = 0
        for x in sorted(simp):
            c = round(simp[x] / a.essay)
            if c >= 1:
                out.append({"id": f"essay-zho{n:05d}", "lang": "zho", "text": x, "pair": {},
                            "fragment": True, "count": c})
                n += 1
        print(f"debtext: essay zho: {len(freq)} words, {len(simp)} with known characters, {n} kept "
              f"(count >= 1)", file=sys.stderr)
    rest = []
    if a.total > 0:
        kept = cap_total(out, a.total, a.seed)
        if a.rest > 0:
            ids = {r["id"] for r in kept}
            rest = T.cap_per_language([r for r in out if r["id"] not in ids], a.rest, f"rest{a.seed}")
        out = kept
    rest_path = os.path.join(a.text, "extra_rest.jsonl")
    if a.out != "extra.jsonl":
        pass  # extra_rest.jsonl belongs to extra.jsonl's run
    elif rest:
        with open(rest_path, "w", encoding="utf-8") as f:
            for r in rest:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"debtext: {len(rest)} sentences left out by --total -> {rest_path}")
    elif os.path.exists(rest_path):
        os.remove(rest_path)
    with open(os.path.join(a.text, a.out), "w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    nfrag = sum(1 for r in out if r.get("fragment"))
    print(f"debtext: {len(out) - nfrag} sentences" + (f", {nfrag} fragments" if nfrag else "")
          + f" from {len(debs)} packages -> {a.text}/{a.out}")


if __name__ == "__main__":
    main()
