/* sysinfo.c - library version and a description of the CPU features and backends in use. */
#include "config.h"

#include <stdio.h>

#include "cochlea.h"

#ifdef HAVE_OPENBLAS
char *openblas_get_config(void);
#endif
#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

const char *cochlea_version(void)
{
    return PACKAGE_VERSION;
}

/* AMX-BF16: CPUID.(EAX=7,ECX=0):EDX bit 22; GCC 12's __builtin_cpu_supports has no name for it. */
static int cpu_has_amx_bf16(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    unsigned a = 7, b, c = 0, d;
    unsigned max;
    __asm__ volatile("cpuid" : "=a"(max), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    if (max < 7)
        return 0;
    c = 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    return (d >> 22) & 1;
#else
    return 0;
#endif
}

const char *cochlea_system_info(void)
{
    static _Thread_local char buf[512];
    int n = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    n += snprintf(buf + n, sizeof buf - (size_t)n, "AVX2=%d AVX512F=%d AVX512_BF16=%d AVX512_VNNI=%d AMX_BF16=%d",
                  __builtin_cpu_supports("avx2") ? 1 : 0, __builtin_cpu_supports("avx512f") ? 1 : 0,
                  __builtin_cpu_supports("avx512bf16") ? 1 : 0, __builtin_cpu_supports("avx512vnni") ? 1 : 0,
                  cpu_has_amx_bf16());
#else
    n += snprintf(buf + n, sizeof buf - (size_t)n, "cpu=generic");
#endif
#ifdef HAVE_OPENBLAS
    n += snprintf(buf + n, sizeof buf - (size_t)n, " | BLAS=%s", openblas_get_config());
#else
    n += snprintf(buf + n, sizeof buf - (size_t)n, " | BLAS=cblas");
#endif
#ifdef HAVE_DNNL
    {
        const dnnl_version_t *v = dnnl_version();
        snprintf(buf + n, sizeof buf - (size_t)n, " | oneDNN=%d.%d.%d", v->major, v->minor, v->patch);
    }
#else
    snprintf(buf + n, sizeof buf - (size_t)n, " | oneDNN=no");
#endif
    return buf;
}
