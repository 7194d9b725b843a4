#include "worker/nn/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cpu.h"

#ifdef TLSWEEP_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

static const char *const backend_names[] = {"auto", "openblas", "onednn"};
static const char *const precision_names[] = {"fp32", "bf16"};

const char *nn_backend_name(nn_backend b)
{
    return (unsigned)b < 3 ? backend_names[b] : "?";
}

int nn_backend_parse(const char *s, nn_backend *out)
{
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, backend_names[i])) {
            *out = (nn_backend)i;
            return 0;
        }
    return -1;
}

const char *nn_precision_name(nn_precision p)
{
    return (unsigned)p < 2 ? precision_names[p] : "?";
}

int nn_precision_parse(const char *s, nn_precision *out)
{
    for (int i = 0; i < 2; i++)
        if (s && !strcmp(s, precision_names[i])) {
            *out = (nn_precision)i;
            return 0;
        }
    return -1;
}

static int have_backend, have_precision;
static nn_backend cur_backend;
static nn_precision cur_precision;

/* The index of the environment variable's value in names (n of them), or 0
 * (the default) with a line saying so when it names none. */
static int from_env(const char *var, const char *const *names, int n)
{
    const char *env = getenv(var);
    if (!env || !*env)
        return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(env, names[i]))
            return i;
    fprintf(stderr, "tlsweep: %s=%s: expected %s", var, env, names[0]);
    for (int i = 1; i < n; i++)
        fprintf(stderr, "%s%s", i == n - 1 ? " or " : ", ", names[i]);
    fprintf(stderr, "; using %s\n", names[0]);
    return 0;
}

nn_backend nn_backend_get(void)
{
    if (!have_backend) {
        cur_backend = (nn_backend)from_env("TLSWEEP_ENGINE", backend_names, 3);
        have_backend = 1;
    }
    return cur_backend;
}

void nn_backend_set(nn_backend b)
{
    cur_backend = b;
    have_backend = 1;
}

nn_precision nn_precision_get(void)
{
    if (!have_precision) {
        cur_precision = (nn_precision)from_env("TLSWEEP_PRECISION", precision_names, 2);
        have_precision = 1;
    }
    return cur_precision;
}

void nn_precision_set(nn_precision p)
{
    cur_precision = p;
    have_precision = 1;
}

int nn_have_onednn(void)
{
#ifdef TLSWEEP_HAVE_ONEDNN
    return 1;
#else
    return 0;
#endif
}

int nn_cpu_has_bf16(void)
{
    return tl_cpu_has_avx512_bf16();
}

char *nn_onednn_describe(char *buf, int n)
{
#ifdef TLSWEEP_HAVE_ONEDNN
    const dnnl_version_t *v = dnnl_version();
    static const struct { int isa; const char *name; } isas[] = {
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"},
        {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"},
        {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx2, "avx2"},
    };
    const char *isa = "sse41 or older";
    int eff = (int)dnnl_get_effective_cpu_isa();
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
        if ((eff & isas[i].isa) == isas[i].isa) {
            isa = isas[i].name;
            break;
        }
    snprintf(buf, n, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch, isa);
#else
    snprintf(buf, n, "oneDNN not built in (OpenBLAS only)");
#endif
    return buf;
}
