/* testutil.h - helpers shared by the Check suites: seeded RNG, random fills, comparisons. */
#ifndef COCHLEA_TESTUTIL_H
#define COCHLEA_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* splitmix64: deterministic, seedable, good enough for test data. */
typedef struct { uint64_t s; } test_rng;

static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline float test_rng_uniform(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((test_rng_next(r) >> 40) * (1.0 / 16777216.0));
}

/* Integer in [lo, hi]. */
static inline int test_rng_int(test_rng *r, int lo, int hi)
{
    return lo + (int)(test_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline void test_fill(test_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = test_rng_uniform(r, lo, hi);
}

static inline float *test_alloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Max |a-b| over n values; NaN in either (and not both) counts as infinite. */
static inline double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i]))
            return INFINITY;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m)
            m = d;
    }
    return m;
}

/* Assert every |a-b| <= atol + rtol*|b|, with a message naming the first bad index. */
#define test_assert_close(a, b, n, atol, rtol)                                                               \
    do {                                                                                                     \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++) {                                                        \
            double d_ = fabs((double)(a)[i_] - (double)(b)[i_]);                                             \
            ck_assert_msg(d_ <= (atol) + (rtol)*fabs((double)(b)[i_]) && !isnan((double)(a)[i_]),            \
                          "index %zu: got %.9g, expected %.9g (|diff| %.3g)", i_, (double)(a)[i_],           \
                          (double)(b)[i_], d_);                                                              \
        }                                                                                                    \
    } while (0)

/* Run a suite with CK_NORMAL output and return the process exit status. */
static inline int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
