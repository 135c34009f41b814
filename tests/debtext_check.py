#!/usr/bin/env python3
"""Checks recipes/owsm_ctc_tiny/local/debtext.py offline: a .deb made here (dpkg-deb --build)
holding two gettext catalogs written here (German and Russian) stands in for the Debian packages,
and the sentences debtext.py keeps, drops and pairs are compared with what its rules say. A second
.deb made here, named fortunes-de, stands in for a fortune cookie package (--fortunes), and a
third, named manpages-fr, for a package of translated manual pages (--manpages; needs groff).

    debtext_check.py TOP_SRCDIR
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def write_mo(path, msgs):
    """A GNU .mo file (little-endian, no hash table) of the {msgid: msgstr} dict."""
    msgs = dict(msgs)
    msgs[""] = "Content-Type: text/plain; charset=UTF-8\n"
    keys = sorted(msgs)
    ids = [k.encode() for k in keys]
    strs = [msgs[k].encode() for k in keys]
    n = len(keys)
    o_ids, o_strs = 28, 28 + 8 * n
    data = 28 + 16 * n
    tab_i, tab_s, blob = [], [], b""
    for b in ids:
        tab_i.append((len(b), data + len(blob)))
        blob += b + b"\0"
    for b in strs:
        tab_s.append((len(b), data + len(blob)))
        blob += b + b"\0"
    with open(path, "wb") as f:
        f.write(struct.pack("<7I", 0x950412DE, 0, n, o_ids, o_strs, 0, 0))
        for ln, off in tab_i + tab_s:
            f.write(struct.pack("<2I", ln, off))
        f.write(blob)


def build_deb(root, name, what, debs):
    """debs/NAME_1.0_all.deb holding the tree under root (dpkg-deb --build)."""
    os.makedirs(os.path.join(root, "DEBIAN"))
    with open(os.path.join(root, "DEBIAN", "control"), "w") as f:
        f.write(f"Package: {name}\nVersion: 1.0\nArchitecture: all\n"
                f"Maintainer: Cochlea <cochlea@example.org>\nDescription: test {what}\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", root,
                    os.path.join(debs, f"{name}_1.0_all.deb")], check=True, capture_output=True)


def jsonl(path, recs):
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    top = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="cochlea_debtext")
    try:
        text = os.path.join(tmp, "text")
        os.makedirs(text)
        # the training text decides the characters and the length allowed per language
        train = [("deu", "Öffne die Datei. Lies sie jetzt bitte ganz langsam."),
                 ("deu", "Wir fahren morgen mit dem Zug nach Berlin."),
                 ("deu", "Um 9 Uhr fahren wir."),  # a digit occurs in the text
                 ("rus", "Открыть этот файл и прочитать его сейчас очень медленно."),
                 ("rus", "Это файл Linux на диске."),  # Latin letters occur in the text
                 ("eng", "Open the file and read it very slowly now, please."),
                 ("eng", "We will take the train tomorrow to a big city."),
                 ("fra", "Nous lisons la maison ce soir et nous fermons la porte."),
                 ("fra", "Il y a un livre bleu dans la chambre de Thomas."),
                 ("fra", "Afficher la version du livre, puis quitter la maison avec Thomas."),
                 ("fra", "Nous allons voir le livre bleu de Thomas dans la maison ce soir."),
                 ("fra", "Il y a un livre bleu-vert dans la maison de Thomas."),  # a hyphen occurs
                 ("zho", "我们明天去学校。")]
        jsonl(os.path.join(text, "train.jsonl"),
              [{"id": f"t{i}", "lang": l, "text": t, "pair": {}} for i, (l, t) in enumerate(train)])
        jsonl(os.path.join(text, "dev.jsonl"), [{"id": "d0", "lang": "deu", "text": "Wir lesen die Datei.", "pair": {}}])
        jsonl(os.path.join(text, "test.jsonl"), [{"id": "s0", "lang": "eng", "text": "Read the file now.", "pair": {}}])
        de = {"Open the file.": "Öffne die Datei.",                 # kept, pair kept
              "Read the file now.": "Lies die Datei jetzt.",        # German kept; English is a test sentence
              "Read the file.": "Wir lesen die Datei.",             # German is a dev sentence
              "Version 2 is here.": "Version 2 ist da.",            # digit
              "Save as %s.": "Speichern als %s.",                   # format directive
              "Use the VLC player.": "Nimm den VLC Spieler.",       # acronym (and V, L, C unseen)
              "We take the train.": "Wir fahren mit der DB.",       # acronym
              "Close it": "Schließe sie",                           # no full stop
              "Go to Zurich.": "Fahr nach Zürich.",                 # ü is not in the German training text
              "Read it.": "Lies sie.",                              # two words only
              "Read the file now and tomorrow slowly after the train.":
                  "Lies die Datei jetzt und lies sie morgen ganz langsam nach dem Zug.",  # too long
              "I leave at 9.": "Um 9 Uhr fahre ich.",               # a digit (seen in the text)
              "See file.txt now.": "Lies file.txt jetzt."}         # a file name
        ru = {"Open the file.": "Открыть этот файл.",               # kept, pair kept
              "Open the Linux file.": "Открыть файл Linux."}        # Latin letters (all seen) in Russian
        pkg = os.path.join(tmp, "pkg")
        for loc, msgs in (("de", de), ("ru", ru), ("xx", {"Open the file.": "Xx xx xx."})):
            d = os.path.join(pkg, "usr", "share", "locale", loc, "LC_MESSAGES")
            os.makedirs(d)
            write_mo(os.path.join(d, "test.mo"), msgs)
        # LibreOffice's layout: LOCALE/LC_MESSAGES elsewhere, every message with a msgctxt
        d = os.path.join(pkg, "usr", "lib", "office", "resource", "de", "LC_MESSAGES")
        os.makedirs(d)
        write_mo(os.path.join(d, "lo.mo"), {"STR_OPEN_NOW\x04Open it now.": "Öffne sie jetzt."})
        debs = os.path.join(tmp, "debs")
        os.makedirs(debs)
        build_deb(pkg, "cochlea-test-l10n", "catalogs", debs)
        # a fortunes package: cookies between lines "%", an attribution line, a Latin-1 file,
        # an offensive section and an index (.dat) that must not be read
        fpkg = os.path.join(tmp, "fpkg")
        fdir = os.path.join(fpkg, "usr", "share", "games", "fortunes", "de")
        os.makedirs(os.path.join(fdir, "off"))
        with open(os.path.join(fdir, "sprueche"), "w", encoding="utf-8") as f:
            f.write("Wir fahren morgen. Lies sie jetzt bitte!\n"  # kept; "!" is not in the training text
                    "\t-- Wir fahren mit dem Zug.\n%\n"           # an attribution, dropped
                    "- Wir lesen die Datei.\n%\n"                # a dev sentence (after its dash)
                    "Öffne die Datei.\n%\n"                      # already kept from the catalogs
                    "Fahr nach Zürich bitte.\n%\n"               # ü is not in the training text
                    "Wir fahren\nmorgen mit dem Zug.\n%\n"       # two lines, one sentence: kept
                    "Lies die Datei jetzt bitte morgen mit dem Zug.\n")  # too long
        with open(os.path.join(fdir, "alt"), "wb") as f:
            f.write("»Öffne sie langsam bitte.«\n%\n".encode("latin-1"))  # Latin-1, quotes dropped: kept
        with open(os.path.join(fdir, "off", "grob"), "w", encoding="utf-8") as f:
            f.write("Wir fahren bitte langsam.\n%\n")
        with open(os.path.join(fdir, "sprueche.dat"), "w", encoding="utf-8") as f:
            f.write("Wir fahren ganz langsam.\n%\n")
        build_deb(fpkg, "fortunes-de", "cookies", debs)
        # a manual pages package: a gzipped page with a title, a name line, prose, tagged
        # paragraphs, an untranslated English paragraph, a heading; a plain page; an include-only page
        # (skipped; it must not break the run)
        mpkg = os.path.join(tmp, "mpkg")
        mdir = os.path.join(mpkg, "usr", "share", "man", "fr")
        os.makedirs(os.path.join(mdir, "man1"))
        os.makedirs(os.path.join(mdir, "man5"))
        with open(os.path.join(mdir, "man1", "essai.1.gz"), "wb") as f:
            f.write(gzip.compress(
                (".TH ESSAI 1 \"\" \"\" \"Commandes\"\n.SH NOM\nessai \\- lire la maison\n"
                 ".SH DESCRIPTION\nNous lisons la maison.\nNous fermons la porte ce soir.\n"
                 ".TP\n.B \\-v\nAfficher la version du livre.\n"  # kept: the tag's text
                 ".TP\n.B \\-q\nlire la maison ce soir.\n"            # no capital: a fragment
                 ".PP\nThe file is read and the house is closed by it.\n"  # English
                 "Nous lisons the file ce soir.\n"       # two English words, four French: kept
                 "Nous lisons the file and.\n"           # three English words, two French: English
                 "Tout est bien.\n"                      # no word known in either: kept
                 ".SH \"Nous lisons le livre.\"\n"        # a heading
                 ".SH VOIR AUSSI\nIl y a un livre bleu dans la chambre.\n").encode()))
        with open(os.path.join(mdir, "man5", "maison.5"), "w", encoding="utf-8") as f:
            f.write(".TH MAISON 5\n.SH DESCRIPTION\nNous allons voir la chambre de Thomas.\n")
        with open(os.path.join(mdir, "man5", "autre.5"), "w", encoding="utf-8") as f:
            f.write(".so man5/maison.5\n")
        build_deb(mpkg, "manpages-fr", "pages", debs)
        # help pages: LibreOffice's HTML (markup inside a paragraph, an entity, a heading, a menu
        # path, an untranslated English paragraph, a fragment) and GNOME's Mallard pages (a
        # French page, a Russian one, and one of the C locale, which is no language of the recipe)
        hpkg = os.path.join(tmp, "hpkg")
        hdir = os.path.join(hpkg, "usr", "share", "libreoffice", "help", "fr", "text")
        os.makedirs(hdir)
        with open(os.path.join(hdir, "a.html"), "w", encoding="utf-8") as f:
            f.write('<html><body><h1 id="h">Nous lisons la porte.</h1>\n'
                    '<p class="paragraph" id="p1">Nous lisons <span class="menuitem">le livre\nbleu</span> ce soir.</p>\n'
                    '<p>Nous voyons la ch&#97;mbre bleue.</p><p>Nous lisons la maison - la chambre.</p>\n'
                    '<p>The file is read by the train.</p><p>lire le livre bleu ce soir.</p></body></html>\n')
        build_deb(hpkg, "libreoffice-help-fr", "help", debs)
        gpkg = os.path.join(tmp, "gpkg")
        for loc, page in (("fr", "<p>Il y a une porte bleue dans la maison.</p>"),
                          ("ru", "<p>Открыть его сейчас.</p>"), ("C", "<p>Nous fermons la chambre bleue.</p>")):
            d = os.path.join(gpkg, "usr", "share", "help", loc, "gnome-help")
            os.makedirs(d)
            with open(os.path.join(d, "x.page"), "w", encoding="utf-8") as f:
                f.write(f'<page xmlns="http://projectmallard.org/1.0/"><title>Nous lisons.</title>{page}</page>\n')
        build_deb(gpkg, "gnome-user-docs", "help", debs)
        wpkg = os.path.join(tmp, "wpkg")
        os.makedirs(os.path.join(wpkg, "usr", "share", "wordnet"))
        with open(os.path.join(wpkg, "usr", "share", "wordnet", "data.noun"), "w", encoding="latin-1") as f:
            f.write('  1 This database is provided "AS IS" and "we will read it" is in the licence\n'
                    '00001740 03 n 01 file 0 000 | a paper; "we will read the file"; "ok then"; '
                    '"Read the file now"; "we take the bus--fast"\n'
                    '00001741 03 n 01 slow 0 000 | not fast; "open it slowly"; "the_file is here"\n'
                    '00001742 03 n 01 none 0 000 no gloss "we will open it"\n')
        build_deb(wpkg, "wordnet-base", "wordnet", debs)
        dpkg = os.path.join(tmp, "dpkg")
        os.makedirs(os.path.join(dpkg, "usr", "share", "trans"))
        with open(os.path.join(dpkg, "usr", "share", "trans", "de-en"), "w", encoding="utf-8") as f:
            f.write("# Version :: 1.9\n"
                    "Zug {m} | Wir fahren morgen mit dem Zug. :: train | We will take the train.\n"
                    "Datei {f} | Lies sie bitte. :: file | Read it.\n"  # English: two words
                    "Zeit | Wir fahren jetzt.; Um 9 Uhr fahren wir nach Berlin. :: time | We go. | x\n"  # 2 | 3
                    "Stadt | Wir fahren morgen.; Wir fahren mit dem Zug nach Berlin. :: city | "
                    "We take the train to a big city.\n"
                    "Bahn | Wir fahren [Bahn] jetzt mit dem Zug. :: rail | We will take the train now.\n")
        build_deb(dpkg, "trans-de-en", "dictionary", debs)
        # game dialogue (The Battle for Wesnoth's catalogs): messages of several sentences
        gpkg = os.path.join(tmp, "game")
        for loc, msgs in (("de", {"We will take the train tomorrow. Read it very slowly now.":
                                  "Wir fahren morgen mit dem Zug. Lies sie jetzt ganz langsam.",
                                  "And then we go.": "und dann fahren wir morgen.",  # no capital
                                  "Go to Zurich now!": "Fahr jetzt nach Zürich!"}),  # ü, ! unseen
                          ("zh_CN", {"We go to school. Tomorrow we go.": "我们去学校。明天 我们去。"})):
            d = os.path.join(gpkg, "usr", "share", "games", "wesnoth", "1.16", "translations", loc, "LC_MESSAGES")
            os.makedirs(d)
            write_mo(os.path.join(d, "wesnoth-httt.mo"), msgs)
        build_deb(gpkg, "wesnoth-1.16-data", "game", debs)
        # Rime's word frequency list (traditional Chinese): 學校 and 学校 both become 学校
        epkg = os.path.join(tmp, "essay")
        os.makedirs(os.path.join(epkg, "usr", "share", "rime-data"))
        with open(os.path.join(epkg, "usr", "share", "rime-data", "essay.txt"), "w", encoding="utf-8") as f:
            f.write("學校\t3000\n学校\t1000\n我們\t1600\n明天\t400\n"  # 4, 2, and 0.4: left out
                    "我\t9000\n火車\t5000\nQQ\t5000\n我們明\tx\n去學\n")  # one character; 火车 unseen; Latin; bad lines
        build_deb(epkg, "rime-essay", "word list", debs)
        script = os.path.join(top, "recipes", "owsm_ctc_tiny", "local", "debtext.py")

        def run(*extra):
            r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n", *extra],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"FAIL: debtext.py exited {r.returncode}: {r.stderr.strip()[-400:]}")
            return [json.loads(l) for l in open(os.path.join(text, "extra.jsonl"), encoding="utf-8")]

        got = sorted((r["lang"], r["text"], json.dumps(r["pair"], sort_keys=True, ensure_ascii=False))
                     for r in run())
        want = sorted([
            ("deu", "Öffne die Datei.", json.dumps({"eng": "Open the file."}, ensure_ascii=False)),
            ("deu", "Lies die Datei jetzt.", "{}"),
            ("rus", "Открыть этот файл.", json.dumps({"eng": "Open the file."}, ensure_ascii=False)),
            ("eng", "We take the train.", "{}"),  # its German has an acronym
            ("deu", "Öffne sie jetzt.", json.dumps({"eng": "Open it now."}, ensure_ascii=False)),
            ("eng", "Open it now.", json.dumps({"deu": "Öffne sie jetzt."}, ensure_ascii=False)),
            ("eng", "Open the file.", json.dumps({"deu": "Öffne die Datei.", "rus": "Открыть этот файл."},
                                                 sort_keys=True, ensure_ascii=False)),
        ])
        if got != want:
            print("FAIL: debtext.py kept\n  " + "\n  ".join(map(str, got)) + "\nexpected\n  "
                  + "\n  ".join(map(str, want)))
            return 1
        print(f"ok: debtext.py keeps the {len(want)} sentences its rules allow, with their translations")
        capped = run("--per-lang", "1")
        n = {l: sum(r["lang"] == l for r in capped) for l in ("deu", "rus", "eng")}
        if n != {"deu": 1, "rus": 1, "eng": 1}:  # 2, 1 and 2 candidates
            print(f"FAIL: --per-lang 1 kept {n}")
            return 1
        print("ok: --per-lang caps each language")
        def kept_ok(flag, prefix, recs, want_k):
            """Whether the records with ids prefix-* are want_k and the others the catalog's."""
            got_k = sorted((r["lang"], r["text"], json.dumps(r["pair"])) for r in recs if r["id"].startswith(prefix))
            rest = sorted((r["lang"], r["text"], json.dumps(r["pair"], sort_keys=True, ensure_ascii=False))
                          for r in recs if not r["id"].startswith(prefix))
            if got_k != sorted(want_k) or rest != want:
                print(f"FAIL: debtext.py {flag} kept\n  " + "\n  ".join(map(str, got_k)) + "\nexpected\n  "
                      + "\n  ".join(map(str, sorted(want_k)))
                      + ("" if rest == want else "\nand changed the catalog sentences"))
                return False
            return True

        def capped_ok(prefix, args, n, what):
            """Whether args keep exactly n records with ids prefix-*, and a run without them none."""
            if (sum(r["id"].startswith(prefix) for r in run(*args)) != n
                    or any(r["id"].startswith(prefix.split("-")[0] + "-") for r in run())):
                print(f"FAIL: {what}")
                return False
            return True

        want_f = [("deu", "Wir fahren morgen.", "{}"), ("deu", "Wir fahren morgen mit dem Zug.", "{}"),
                  ("deu", "Öffne sie langsam bitte.", "{}")]
        if not kept_ok("--fortunes", "fort-", run("--fortunes", "10", "--fortune-packages", "fortunes-de"), want_f):
            return 1
        print(f"ok: --fortunes keeps the {len(want_f)} cookie sentences its rules allow")
        if sum(r["id"].startswith("fort-") for r in run("--fortunes", "1", "--fortune-packages", "fortunes-de")) != 1:
            print("FAIL: --fortunes 1 did not keep exactly one cookie sentence")
            return 1
        if any(r["id"].startswith("fort-") for r in run()):
            print("FAIL: cookie sentences without --fortunes")
            return 1
        print("ok: --fortunes caps each language, and none without it")
        if shutil.which("groff") is None:
            print("FAIL: --manpages needs groff (Debian package groff-base); it is not installed")
            return 1
        want_m = [("fra", "Nous lisons la maison.", "{}"), ("fra", "Nous fermons la porte ce soir.", "{}"),
                  ("fra", "Afficher la version du livre.", "{}"), ("fra", "Il y a un livre bleu dans la chambre.", "{}"),
                  ("fra", "Nous lisons the file ce soir.", "{}"), ("fra", "Tout est bien.", "{}"),
                  ("fra", "Nous allons voir la chambre de Thomas.", "{}")]
        if not kept_ok("--manpages", "man-", run("--manpages", "10", "--manpage-packages", "manpages-fr"), want_m):
            return 1
        print(f"ok: --manpages keeps the {len(want_m)} manual page sentences its rules allow")
        if (sum(r["id"].startswith("man-") for r in run("--manpages", "3", "--manpage-packages", "manpages-fr")) != 3
                or any(r["id"].startswith("man-") for r in run("--fortunes", "10", "--fortune-packages", "fortunes-de"))):
            print("FAIL: --manpages 3 did not keep exactly three sentences, or some were kept without it")
            return 1
        print("ok: --manpages caps each language, and none without it")
        want_h = [("fra", "Nous lisons le livre bleu ce soir.", "{}"), ("fra", "Nous voyons la chambre bleue.", "{}"),
                  ("fra", "Il y a une porte bleue dans la maison.", "{}"), ("rus", "Открыть его сейчас.", "{}")]
        hp = ("--help-packages", "libreoffice-help-fr,gnome-user-docs")  # only ours: offline
        if not kept_ok("--help-pages", "help-", run("--help-pages", "10", *hp), want_h):
            return 1
        print(f"ok: --help-pages keeps the {len(want_h)} help page sentences its rules allow")
        if (sum(r["id"].startswith("help-fra") for r in run("--help-pages", "2", *hp)) != 2
                or any(r["id"].startswith("help-") for r in run("--manpages", "10", "--manpage-packages", "manpages-fr"))):
            print("FAIL: --help-pages 2 did not keep two French sentences, or some were kept without it")
            return 1
        if sorted(r["text"] for r in run("--help-pages", "10", "--help-packages", "gnome-user-docs")
                  if r["id"].startswith("help-")) != ["Il y a une porte bleue dans la maison.", "Открыть его сейчас."]:
            print("FAIL: --help-packages gnome-user-docs did not keep exactly its pages' sentences")
            return 1
        print("ok: --help-pages caps each language, reads the packages named, and none without it")
        # WordNet's gloss examples: capitalised, a full stop added; not the licence header, not
        # under three words, not "--" or "_" forms, not a test sentence ("Read the file now.")
        want_w = [("eng", "Open it slowly.", "{}"), ("eng", "We will read the file.", "{}")]
        if not kept_ok("--wordnet", "wn-", run("--wordnet", "10"), want_w):
            return 1
        if not capped_ok("wn-", ("--wordnet", "1"), 1,
                         "--wordnet 1 did not keep exactly one sentence, or some were kept without it"):
            return 1
        print(f"ok: --wordnet keeps the {len(want_w)} WordNet example sentences its rules allow, capped")
        # Ding's example sentences: both sides of entries whose parts match in number, three words
        # or more, a capital first and an end mark last, no [field] marks; ';' splits alternatives
        want_d = [("deu", "Wir fahren morgen mit dem Zug.", "{}"), ("deu", "Lies sie bitte.", "{}"),
                  ("deu", "Wir fahren morgen.", "{}"), ("deu", "Wir fahren mit dem Zug nach Berlin.", "{}"),
                  ("eng", "We will take the train.", "{}"), ("eng", "We take the train to a big city.", "{}"),
                  ("eng", "We will take the train now.", "{}")]
        if not kept_ok("--ding", "ding-", run("--ding", "10"), want_d):
            return 1
        if not capped_ok("ding-deu", ("--ding", "1"), 1,
                         "--ding 1 did not keep exactly one German sentence, or some were kept without it"):
            return 1
        print(f"ok: --ding keeps the {len(want_d)} dictionary example sentences its rules allow, capped")
        # --dialogue: the translated lines, split into sentences (spaces dropped in Chinese); never
        # the English originals (they pass the English rules: it would keep them otherwise)
        want_g = [("deu", "Wir fahren morgen mit dem Zug.", "{}"), ("deu", "Lies sie jetzt ganz langsam.", "{}"),
                  ("zho", "我们去学校。", "{}"), ("zho", "明天我们去。", "{}")]
        game = ("--dialogue-packages", "wesnoth-1.16-data")
        if not kept_ok("--dialogue", "dlg-", run("--dialogue", "10", *game), want_g):
            return 1
        if not capped_ok("dlg-deu", ("--dialogue", "1", *game), 1,
                         "--dialogue 1 did not keep exactly one German sentence, or some were kept without it"):
            return 1
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n",
                            "--dialogue", "5", "--dialogue-packages", "wesnoth-xx"], capture_output=True, text=True)
        if r.returncode == 0 or "wesnoth-xx is not one of" not in r.stderr:
            print(f"FAIL: unknown dialogue package, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        print(f"ok: --dialogue keeps the {len(want_g)} dialogue sentences its rules allow, capped, no English")
        # --essay 1000: the words of two characters or more, simplified, all characters in the
        # Chinese training text, as fragments with count round(frequency / 1000); for --out only
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n",
                            "--essay", "1000", "--out", "lm.jsonl"], capture_output=True, text=True)
        recs = [json.loads(l) for l in open(os.path.join(text, "lm.jsonl"), encoding="utf-8")] \
            if r.returncode == 0 else []
        got_e = sorted((x["lang"], x["text"], x["count"]) for x in recs if x.get("fragment"))
        if got_e != [("zho", "学校", 4), ("zho", "我们", 2)] or \
                sorted(x["text"] for x in recs if not x.get("fragment")) != sorted(x[1] for x in want):
            print(f"FAIL: --essay 1000 kept fragments {got_e} (exit {r.returncode}: {r.stderr.strip()[-300:]})")
            return 1
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n", "--essay", "1000"],
                           capture_output=True, text=True)
        if r.returncode == 0 or "never spoken" not in r.stderr:
            print(f"FAIL: --essay into extra.jsonl (spoken text), but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        print("ok: --essay keeps the Chinese words its rules allow as counted fragments, for the LM only")
        # --unknown-chars: "Fahr nach Zürich." has two characters the German training text lacks
        # (F and ü): kept with deu:2, not with deu:1 or for another language; for --out only
        def unknown_run(value, out="lm.jsonl"):
            r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n",
                                "--unknown-chars", value, "--out", out], capture_output=True, text=True)
            recs = [json.loads(l) for l in open(os.path.join(text, out), encoding="utf-8")] if r.returncode == 0 else []
            return r, sorted((x["lang"], x["text"]) for x in recs)
        base = sorted((x[0], x[1]) for x in want)
        for value, want_u in (("deu:2", sorted(base + [("deu", "Fahr nach Zürich.")])), ("deu:1", base),
                              ("rus:5,zho:2", base)):
            r, got_u = unknown_run(value)
            if got_u != want_u:
                print(f"FAIL: --unknown-chars {value} kept {got_u} (exit {r.returncode}: {r.stderr.strip()[-300:]})")
                return 1
        for value, out, msg in (("deu:2", "extra.jsonl", "never spoken"), ("deu", "lm.jsonl", "LANG:N"),
                                ("xx:2", "lm.jsonl", "LANG:N")):
            r, _ = unknown_run(value, out)
            if r.returncode == 0 or msg not in r.stderr:
                print(f"FAIL: --unknown-chars {value} --out {out}, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
                return 1
        print("ok: --unknown-chars allows that many unseen characters in that language, for the LM only")
        # --total 4 over catalogs (deu 3) + cookies (deu 3) + pages (fra 7): at most 4 of each
        # language over all sources, a subset of what is kept without it, in the same order
        both = ("--fortunes", "10", "--fortune-packages", "fortunes-de",
                "--manpages", "10", "--manpage-packages", "manpages-fr")
        full = run(*both)
        tot = run(*both, "--total", "4")
        n_full = {l: sum(r["lang"] == l for r in full) for l in ("deu", "fra", "rus", "eng")}
        n_tot = {l: sum(r["lang"] == l for r in tot) for l in ("deu", "fra", "rus", "eng")}
        ids = [r["id"] for r in full]
        if (n_full != {"deu": 6, "fra": 7, "rus": 1, "eng": 3} or n_tot != {"deu": 4, "fra": 4, "rus": 1, "eng": 3}
                or [r["id"] for r in tot] != [i for i in ids if i in {r["id"] for r in tot}]
                or any(r not in full for r in tot) or run(*both, "--total", "4") != tot):
            print(f"FAIL: --total 4 kept {n_tot} of {n_full}, or not a subset in order, or not the same twice")
            return 1
        print("ok: --total caps each language over all sources together")
        # --rest 1: extra.jsonl as with --total alone; of the sentences --total left out (deu 2,
        # fra 3), one of each language goes to extra_rest.jsonl, none kept twice
        rest_path = os.path.join(text, "extra_rest.jsonl")
        if run(*both, "--total", "4", "--rest", "1") != tot:
            print("FAIL: --rest changed extra.jsonl")
            return 1
        rest = [json.loads(l) for l in open(rest_path, encoding="utf-8")]
        n_rest = {l: sum(r["lang"] == l for r in rest) for l in ("deu", "fra", "rus", "eng")}
        tot_ids = {r["id"] for r in tot}
        if (n_rest != {"deu": 1, "fra": 1, "rus": 0, "eng": 0} or any(r["id"] in tot_ids for r in rest)
                or any(r not in full for r in rest)):
            print(f"FAIL: --rest 1 wrote {n_rest} to extra_rest.jsonl, or some kept by --total too")
            return 1
        run(*both, "--total", "4", "--rest", "5")
        rest5 = [json.loads(l) for l in open(rest_path, encoding="utf-8")]
        if sorted(r["id"] for r in rest5) != sorted(i for i in ids if i not in tot_ids):
            print("FAIL: --rest 5 did not write every sentence --total left out")
            return 1
        run(*both, "--total", "4")
        if os.path.exists(rest_path):
            print("FAIL: a stale extra_rest.jsonl stayed after a run without --rest")
            return 1
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n", "--rest", "3"],
                           capture_output=True, text=True)
        if r.returncode == 0 or "--rest needs --total" not in r.stderr:
            print(f"FAIL: --rest without --total, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        print("ok: --rest keeps what --total left out in extra_rest.jsonl, and removes a stale one")
        # --out lm.jsonl (stage 1's text for the language model): the same sentences in another
        # file, extra.jsonl and extra_rest.jsonl untouched; --out with --rest, or a split's name, refused
        run(*both, "--total", "4", "--rest", "1")
        before = {n: open(os.path.join(text, n), encoding="utf-8").read() for n in ("extra.jsonl", "extra_rest.jsonl")}
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n", *both,
                            "--out", "lm.jsonl"], capture_output=True, text=True)
        lmx = [json.loads(l) for l in open(os.path.join(text, "lm.jsonl"), encoding="utf-8")] \
            if r.returncode == 0 else None
        after = {n: open(os.path.join(text, n), encoding="utf-8").read() for n in before}
        if lmx != full or after != before:
            print(f"FAIL: --out lm.jsonl wrote {None if lmx is None else len(lmx)} sentences (want {len(full)}), "
                  f"or touched extra.jsonl/extra_rest.jsonl: {r.stderr.strip()[-300:]}")
            return 1
        for bad in (["--out", "lm.jsonl", "--total", "4", "--rest", "1"], ["--out", "train.jsonl"],
                    ["--out", "../x.jsonl"]):
            r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n", *bad],
                               capture_output=True, text=True)
            if r.returncode == 0 or "--out" not in r.stderr:
                print(f"FAIL: debtext.py {' '.join(bad)}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
                return 1
        print("ok: --out lm.jsonl writes the same sentences to another file and leaves extra.jsonl alone")
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n",
                            "--manpages", "5", "--manpage-packages", "manpages-xx"], capture_output=True, text=True)
        if r.returncode == 0 or "manpages-xx is not one of" not in r.stderr:
            print(f"FAIL: unknown manpages package, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n",
                            "--help-pages", "5", "--help-packages", "libreoffice-help-xx"], capture_output=True, text=True)
        if r.returncode == 0 or "libreoffice-help-xx is not one of" not in r.stderr:
            print(f"FAIL: unknown help package, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-test-l10n",
                            "--fortunes", "5", "--fortune-packages", "fortunes-xx"], capture_output=True, text=True)
        if r.returncode == 0 or "fortunes-xx is not one of" not in r.stderr:
            print(f"FAIL: unknown fortunes package, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        r = subprocess.run([sys.executable, script, text, debs, "--packages", "cochlea-no-such-package-x"],
                           capture_output=True, text=True)
        if r.returncode == 0 or "no package could be fetched" not in r.stderr + r.stdout:
            print(f"FAIL: no package fetched, but exit {r.returncode}: {r.stderr.strip()[-300:]}")
            return 1
        print("ok: a clear error when no package can be fetched")
        # a converter that hangs (kakasi can, on some input) or fails is a SystemExit, which
        # debtext.py's convert() answers line by line, not a stalled or crashed stage 1
        sys.path.insert(0, os.path.join(top, "recipes", "owsm_ctc_tiny", "local"))
        import text as T
        for cmd, what in ((["sh", "-c", "sleep 30"], "no answer in 1 s"), (["sh", "-c", "exit 3"], "exit status 3")):
            try:
                T.run_filter(cmd, ["x"], timeout=1)
                print(f"FAIL: run_filter({cmd}) returned")
                return 1
            except SystemExit as e:
                if what not in str(e):
                    print(f"FAIL: run_filter({cmd}): {e}")
                    return 1
        if T.run_filter(["cat"], ["a", "b"]) != ["a", "b"]:
            print("FAIL: run_filter(cat) changed its lines")
            return 1
        print("ok: a converter that hangs or fails is a clear error (text.run_filter)")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
