#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "worker/engine/engine.h"

#include "worker/nn/nn.h"

#include <cblas.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int engine_threads_default(void)
{
    const char *env = getenv("TLSWEEP_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0 && v <= 4096)
            return (int)v;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0)
            return c;
    }
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

int engine_threads_set(int n)
{
    if (n <= 0)
        n = engine_threads_default();
    openblas_set_num_threads(n);
    nn_set_threads(n);
    return n;
}

int engine_threads_get(void)
{
    return openblas_get_num_threads();
}

char *engine_blas_describe(char *buf, size_t n)
{
    /* openblas_get_config() starts with "OpenBLAS <version> ..." */
    char version[32] = "OpenBLAS";
    const char *cfg = openblas_get_config();
    if (cfg && strncmp(cfg, "OpenBLAS ", 9) == 0) {
        size_t len = strcspn(cfg + 9, " ");
        if (len < sizeof version - 10)
            snprintf(version, sizeof version, "OpenBLAS %.*s", (int)len, cfg + 9);
    }
    const char *env = getenv("OPENBLAS_CORETYPE");
    int threads = openblas_get_num_threads();
    snprintf(buf, n, "%s %s kernels%s%s%s, %d thread%s", version, openblas_get_corename(),
             env && *env ? " (OPENBLAS_CORETYPE=" : "", env && *env ? env : "",
             env && *env ? ")" : "", threads, threads == 1 ? "" : "s");
    return buf;
}

/* OpenBLAS 0.3.21 x86-64 cores with AVX-512 kernels. */
static int engine_core_has_avx512(const char *core)
{
    static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
    for (size_t i = 0; i < sizeof avx512_cores / sizeof *avx512_cores; i++)
        if (strcasecmp(core, avx512_cores[i]) == 0)
            return 1;
    return 0;
}

int engine_blas_warning(char *buf, size_t n)
{
    if (n)
        buf[0] = '\0';
    const char *env = getenv("OPENBLAS_CORETYPE");
    const char *quiet = getenv("TLSWEEP_BLAS_QUIET");
    if (!env || !*env || (quiet && strcmp(quiet, "1") == 0))
        return 0;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
    const char *core = openblas_get_corename();
    if (!core || engine_core_has_avx512(core))
        return 0;
    /* OpenBLAS reads the variable once, when the library loads: unsetting it
     * from inside the process would change nothing. */
    snprintf(buf, n,
             "warning: OPENBLAS_CORETYPE=%s forces OpenBLAS onto %s kernels, leaving this "
             "CPU's AVX-512 unused (GEMM can be up to 2x slower). Run `unset OPENBLAS_CORETYPE` "
             "before starting tlsweep, or set TLSWEEP_BLAS_QUIET=1 if this is deliberate.",
             env, core);
    return 1;
}

void engine_reexec_tuned(char **argv)
{
    const char *off = getenv("TLSWEEP_NO_REEXEC");
    if (getenv("OMP_WAIT_POLICY") || (off && *off && strcmp(off, "0") != 0))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): run on with the default policy */
    unsetenv("OMP_WAIT_POLICY");
}
