/* ctc.c - greedy CTC decoding and detokenisation (owsm-ctc.md §5.6, §8 item 16). */
#include "asr/ctc.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

size_t ctc_collapse(const int32_t *frames, size_t n, int32_t blank, int32_t *out)
{
    size_t k = 0;
    int32_t prev = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = frames[i];
        if (id != prev && id != blank)
            out[k++] = id;
        prev = id;
    }
    return k;
}

int ctc_is_special(const char *piece, size_t len)
{
    return len >= 2 && piece[0] == '<' && piece[len - 1] == '>';
}

int ctc_ids_to_text(const owsm_model *m, const int32_t *ids, size_t n, int nospecial, char **text)
{
    *text = NULL;
    if (!m->tok)
        return err_set(COCHLEA_EUNSUPPORTED, "%s: the model carries no SentencePiece model to detokenise with",
                       gguf_label(m->file));
    const char **pieces = malloc((n ? n : 1) * sizeof *pieces);
    size_t *lens = malloc((n ? n : 1) * sizeof *lens);
    if (!pieces || !lens) {
        free(pieces);
        free(lens);
        return err_set(COCHLEA_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->hp.vocab) {
            free(pieces);
            free(lens);
            return err_set(COCHLEA_ERANGE, "token id %d is outside the vocabulary [0, %lld)", (int)ids[i],
                           (long long)m->hp.vocab);
        }
        const char *p = m->tokens[ids[i]];
        size_t l = m->token_len[ids[i]];
        if (nospecial && ctc_is_special(p, l))
            continue;
        pieces[k] = p;
        lens[k] = l;
        k++;
    }
    size_t len;
    int rc = tokenizer_decode_pieces(m->tok, pieces, lens, k, text, &len);
    free(pieces);
    free(lens);
    return rc;
}
