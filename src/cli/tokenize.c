/* tokenize.c - `cochlea tokenize`: SentencePiece encoding/decoding of stdin, one line at a time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tokenizer.h"

enum { OUT_PIECES, OUT_IDS, OUT_NORMALIZED };

/* Write one encoded line: pieces or ids separated by single spaces. */
static int write_encoded(FILE *out, const tokenizer_output *o, int mode)
{
    for (size_t i = 0; i < o->n; i++) {
        if (i && fputc(' ', out) == EOF)
            return -1;
        if (mode == OUT_IDS) {
            if (fprintf(out, "%d", (int)o->ids[i]) < 0)
                return -1;
        } else if (fwrite(o->text + o->offs[i], 1, o->offs[i + 1] - o->offs[i], out) != o->offs[i + 1] - o->offs[i]) {
            return -1;
        }
    }
    return fputc('\n', out) == EOF ? -1 : 0;
}

/* Split a line of ids into ids[] (grown as needed); returns the count, or -1 on a bad token. */
static long parse_ids(const char *cmd, char *line, size_t lineno, int32_t **ids, size_t *cap)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX || (*end && *end != ' ' && *end != '\t' && *end != '\r')) {
            size_t w = strcspn(p, " \t\r");
            cli_error("%s: line %zu: '%.*s' is not a token id", cmd, lineno, (int)(w > 40 ? 40 : w), p);
            return -1;
        }
        if (n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            int32_t *q = realloc(*ids, nc * sizeof *q);
            if (!q) {
                cli_error("%s: out of memory", cmd);
                return -1;
            }
            *ids = q;
            *cap = nc;
        }
        (*ids)[n++] = (int32_t)v;
        p = end;
    }
    return (long)n;
}

/* Split a line of space-separated pieces in place into pointers/lengths. */
static long split_pieces(char *line, size_t len, const char ***pieces, size_t **lens, size_t *cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (line[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && line[j] != ' ')
            j++;
        if (n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            const char **p = realloc(*pieces, nc * sizeof *p);
            if (p)
                *pieces = p;
            size_t *l = realloc(*lens, nc * sizeof *l);
            if (l)
                *lens = l;
            if (!p || !l)
                return -1;
            *cap = nc;
        }
        (*pieces)[n] = line + i;
        (*lens)[n] = j - i;
        n++;
        i = j;
    }
    return (long)n;
}

static int run_tokenize(int argc, char **argv)
{
    const char *cmd = argv[0];
    cli_common common = {0};
    const char *spm = NULL;
    int mode = OUT_PIECES, decode = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            cli_print_usage(&cli_cmd_tokenize);
            return 0;
        }
        int r = cli_parse_common(&common, cmd, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(a, "--spm") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "option --spm needs a value");
            spm = argv[++i];
        } else if (strncmp(a, "--spm=", 6) == 0) {
            spm = a + 6;
        } else if (strcmp(a, "--ids") == 0) {
            mode = OUT_IDS;
        } else if (strcmp(a, "--pieces") == 0) {
            mode = OUT_PIECES;
        } else if (strcmp(a, "--normalize") == 0) {
            mode = OUT_NORMALIZED;
        } else if (strcmp(a, "--decode") == 0) {
            decode = 1;
        } else {
            return cli_usage_error(cmd, "unknown option or argument '%s'", a);
        }
    }
    if (!!spm == !!common.model)
        return cli_usage_error(cmd, "give exactly one of --spm FILE.model and -m MODEL.gguf");
    if (decode && mode == OUT_NORMALIZED)
        return cli_usage_error(cmd, "--normalize and --decode cannot be combined");
    cli_setup_logging(&common);

    tokenizer *tok = NULL;
    int rc = spm ? tokenizer_load(spm, &tok) : tokenizer_load_gguf(common.model, &tok);
    if (rc)
        return cli_lib_error(rc, "loading the tokenizer");
    FILE *out = stdout;
    if (common.output && strcmp(common.output, "-") != 0) {
        out = fopen(common.output, "wb");
        if (!out) {
            tokenizer_free(tok);
            return cli_error("%s: cannot open for writing: %s", common.output, strerror(errno));
        }
    }

    char *line = NULL;
    size_t line_cap = 0, lineno = 0;
    ssize_t got;
    tokenizer_output enc = {0};
    int32_t *ids = NULL;
    size_t ids_cap = 0, pieces_cap = 0;
    const char **pieces = NULL;
    size_t *lens = NULL;
    int status = 0;
    while (status == 0 && (got = getline(&line, &line_cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        lineno++;
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (!decode) {
            if (mode == OUT_NORMALIZED) {
                char *norm;
                size_t nlen;
                if ((rc = tokenizer_normalize(tok, line, len, &norm, &nlen))) {
                    status = cli_lib_error(rc, "normalizing");
                    break;
                }
                if (fwrite(norm, 1, nlen, out) != nlen || fputc('\n', out) == EOF)
                    status = cli_error("write error: %s", strerror(errno));
                free(norm);
                continue;
            }
            if ((rc = tokenizer_encode(tok, line, len, &enc))) {
                char what[64];
                snprintf(what, sizeof what, "line %zu", lineno);
                status = cli_lib_error(rc, what);
                break;
            }
            if (write_encoded(out, &enc, mode))
                status = cli_error("write error: %s", strerror(errno));
            continue;
        }
        char *text = NULL;
        size_t tlen = 0;
        if (mode == OUT_IDS) {
            long n = parse_ids(cmd, line, lineno, &ids, &ids_cap);
            if (n < 0) {
                status = 1;
                break;
            }
            rc = tokenizer_decode(tok, ids, (size_t)n, &text, &tlen);
        } else {
            long n = split_pieces(line, len, &pieces, &lens, &pieces_cap);
            if (n < 0) {
                status = cli_error("out of memory");
                break;
            }
            rc = tokenizer_decode_pieces(tok, pieces, lens, (size_t)n, &text, &tlen);
        }
        if (rc) {
            char what[64];
            snprintf(what, sizeof what, "line %zu", lineno);
            status = cli_lib_error(rc, what);
            break;
        }
        if (fwrite(text, 1, tlen, out) != tlen || fputc('\n', out) == EOF)
            status = cli_error("write error: %s", strerror(errno));
        free(text);
    }
    if (status == 0 && ferror(stdin))
        status = cli_error("error reading stdin: %s", strerror(errno));
    if (out != stdout) {
        if (fclose(out) != 0 && status == 0)
            status = cli_error("%s: write error: %s", common.output, strerror(errno));
    } else if (fflush(out) != 0 && status == 0) {
        status = cli_error("write error: %s", strerror(errno));
    }
    free(line);
    free(ids);
    free(pieces);
    free(lens);
    tokenizer_output_free(&enc);
    tokenizer_free(tok);
    return status;
}

const cli_command cli_cmd_tokenize = {
    "tokenize",
    "SentencePiece tokenisation of stdin, one line at a time",
    "usage: cochlea tokenize (--spm FILE.model | -m MODEL.gguf) [--pieces | --ids | --normalize]\n"
    "                        [--decode] [-o FILE]\n"
    "\n"
    "Reads lines on stdin and writes one line per input line (like llama.cpp's tokenize tool).\n"
    "A line ends at '\\n' only; any other byte, invalid UTF-8 included, is part of the text.\n"
    "\n"
    "  --spm FILE     a SentencePiece .model file\n"
    "  -m MODEL.gguf  the SentencePiece model stored in a GGUF file under the key\n"
    "                 tokenizer.sentencepiece.model\n"
    "  --pieces       write the pieces, separated by spaces (default)\n"
    "  --ids          write the SentencePiece ids, separated by spaces\n"
    "  --normalize    write the normalised text (what the pieces are cut from)\n"
    "  --decode       the other way: read ids (with --ids) or pieces (default) separated by\n"
    "                 spaces and write the decoded text\n"
    "  -o FILE        write to FILE instead of stdout\n"
    "\n"
    "Ids are SentencePiece ids (positions in the .model). An OWSM-CTC model's token ids differ:\n"
    "model id = SentencePiece id - 1 for ids 3..49999, and <unk> 0 -> 1 (owsm-ctc.md 5.1).\n"
    "\n"
    "examples:\n"
    "  echo 'Hello world' | cochlea tokenize --spm bpe.model\n"
    "  echo 'Hello world' | cochlea tokenize --spm bpe.model --ids | cochlea tokenize --spm bpe.model --ids --decode\n",
    run_tokenize,
};
