/* A draft model verified by speculative sampling (draft.h): chain (§5.1), i.i.d. tree (§5.3) or
 * RSD (§4), with draft.h's default tree shape; --nodes caps the tree. */
static int gen_draft_mode(gen_state *g, lm_spec_draft_mode mode, const lm_spec_params *p, const int32_t *prompt,
                          int64_t n_prompt, int32_t *out, int64_t *n_out, lm_spec_stats *st)
{
    lm_spec_draft_params dp = lm_spec_draft_default_params(mode);
    dp.max_new = p->max_new;
    dp.eos = p->eos;
    if (g->nodes > 0)
        dp.max_nodes = g->nodes < LM_SPEC_DRAFT_MAX_NODES ? g->nodes : LM_SPEC_DRAFT_MAX_NODES;
    dp.on_emit = p->on_emit;
    dp.user = p->user;
    return lm_spec_draft_generate(g->ctx, g->m, g->kv, g->draft, g->draft_kv, g->w, g->smp, &dp, prompt, n_prompt,
                                  out, n_out, st);
}
#define GEN_DRAFT(fn, mode)                                                                                          \
    static int fn(gen_state *g, const lm_spec_params *p, const int32_t *pr, int64_t n, int32_t *o, int64_t *no,   \
                  lm_spec_stats *st)                                                                                \
    {                                                                                                                \
        return gen_draft_mode(g, mode, p, pr, n, o, no, st);                                                         \
    }
GEN_DRAFT(gen_draft_chain, LM_SPEC_DRAFT_CHAIN)
GEN_DRAFT(gen_draft_tree, LM_SPEC_DRAFT_TREE)
GEN_DRAFT(gen_draft_rsd, LM_SPEC_DRAFT_RSD)
