/* Torch-named safetensors weights into a torchvision-convention net. */
#include "worker/net/net_load.h"
#include "worker/net/timm_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/weights/safetensors.h"

typedef enum { MAP_COPY, MAP_CONV, MAP_DEPTHWISE, MAP_DENSE } map_kind;

/* "[a, b, c]" into buf. */
static const char *fmt_shape(char *buf, size_t cap, int ndim, const size_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%zu", i ? ", " : "", shape[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
    return buf;
}

/* The net parameter a torch tensor name maps to, or NULL. */
static net_param *map_name(net *n, const char *tname, map_kind *kind)
{
    const char *dot = strrchr(tname, '.');
    if (!dot || dot == tname || (size_t)(dot - tname) >= NET_NAME_MAX)
        return NULL;
    char pname[NET_PARAM_NAME_MAX];
    int mlen = (int)(dot - tname);
    const char *suffix = dot + 1;
    net_param *p = NULL;
    *kind = MAP_COPY;
#define TRY(s) (snprintf(pname, sizeof pname, "%.*s/%s", mlen, tname, s), \
                p = net_find_param(n, pname))
    if (!strcmp(suffix, "weight")) {
        if (TRY("kernel"))
            *kind = p->ndim == 4 ? MAP_CONV : p->ndim == 2 ? MAP_DENSE : MAP_COPY;
        else if (TRY("depthwise_kernel"))
            *kind = MAP_DEPTHWISE;
        else
            TRY("gamma");
    } else if (!strcmp(suffix, "bias")) {
        if (!TRY("bias"))
            TRY("beta");
    } else if (!strcmp(suffix, "running_mean")) {
        TRY("moving_mean");
    } else if (!strcmp(suffix, "running_var")) {
        TRY("moving_variance");
    }
#undef TRY
    return p;
}

/* The torch-layout shape of net parameter p under kind; returns ndim. */
static int torch_shape(const net_param *p, map_kind kind, size_t *shape)
{
    const int *s = p->shape;
    switch (kind) {
    case MAP_CONV: /* (KH,KW,I,O) <- (O,I,KH,KW) */
        shape[0] = (size_t)s[3], shape[1] = (size_t)s[2];
        shape[2] = (size_t)s[0], shape[3] = (size_t)s[1];
        return 4;
    case MAP_DEPTHWISE: /* (KH,KW,C,1) <- (C,1,KH,KW) */
        shape[0] = (size_t)s[2], shape[1] = (size_t)s[3];
        shape[2] = (size_t)s[0], shape[3] = (size_t)s[1];
        return 4;
    case MAP_DENSE: /* (IN,OUT) <- (OUT,IN) */
        shape[0] = (size_t)s[1], shape[1] = (size_t)s[0];
        return 2;
    case MAP_COPY:
        break;
    }
    for (int i = 0; i < p->ndim; i++)
        shape[i] = (size_t)s[i];
    return p->ndim;
}

/* dst in our layout from src in torch layout. */
static void transpose_in(float *dst, const float *src, const net_param *p, map_kind kind)
{
    const int *s = p->shape;
    switch (kind) {
    case MAP_CONV: {
        size_t KH = (size_t)s[0], KW = (size_t)s[1], I = (size_t)s[2], O = (size_t)s[3];
        for (size_t o = 0; o < O; o++)
            for (size_t i = 0; i < I; i++)
                for (size_t kh = 0; kh < KH; kh++)
                    for (size_t kw = 0; kw < KW; kw++)
                        dst[((kh * KW + kw) * I + i) * O + o] =
                            src[((o * I + i) * KH + kh) * KW + kw];
        return;
    }
    case MAP_DEPTHWISE: {
        size_t KH = (size_t)s[0], KW = (size_t)s[1], C = (size_t)s[2];
        for (size_t c = 0; c < C; c++)
            for (size_t k = 0; k < KH * KW; k++)
                dst[k * C + c] = src[c * KH * KW + k];
        return;
    }
    case MAP_DENSE: {
        size_t IN = (size_t)s[0], OUT = (size_t)s[1];
        for (size_t o = 0; o < OUT; o++)
            for (size_t i = 0; i < IN; i++)
                dst[i * OUT + o] = src[o * IN + i];
        return;
    }
    case MAP_COPY:
        memcpy(dst, src, p->n * sizeof *dst);
        return;
    }
}

const char *net_load_torch_suffix(const net_param *p)
{
    const char *s = strrchr(p->name, '/');
    s = s ? s + 1 : p->name;
    if (!strcmp(s, "bias") || !strcmp(s, "beta"))
        return "bias";
    if (!strcmp(s, "moving_mean"))
        return "running_mean";
    if (!strcmp(s, "moving_variance"))
        return "running_var";
    return "weight";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int net_load_safetensors(net *n, const char *path, int strict, tl_err *e)
{
    if (!n->finalized)
        return tl_errf(e, TL_EINVAL, "weights %s: the network must be finalized before loading",
                       path);
    weights_st *st = NULL;
    int rc = weights_st_open(&st, path, e);
    if (rc)
        return rc;
    char *loaded = calloc((size_t)n->n_params + 1, 1);
    float *tmp = NULL;
    size_t tmp_cap = 0;
    const char *unused = NULL;
    if (!loaded) {
        rc = tl_errf(e, TL_ENOMEM, "weights %s: out of memory", path);
        goto done;
    }
    size_t count = weights_st_count(st);
    for (size_t i = 0; i < count; i++) {
        const weights_st_tensor *t = weights_st_get(st, i);
        if (ends_with(t->name, ".num_batches_tracked"))
            continue;
        map_kind kind;
        net_param *p = map_name(n, t->name, &kind);
        char alt[NET_PARAM_NAME_MAX + 32];
        if (!p && timm_mobilenet_v2_name(t->name, alt, sizeof alt))
            p = map_name(n, alt, &kind);
        if (!p) {
            if (!unused)
                unused = t->name;
            continue;
        }
        size_t want[4];
        int nd = torch_shape(p, kind, want);
        int fits = t->ndim == nd;
        for (int k = 0; fits && k < nd; k++)
            fits = t->shape[k] == want[k];
        if (!fits) {
            char a[96], b[96];
            rc = tl_errf(e, TL_ESHAPE, "weights %s: tensor '%s' has shape %s, but %s needs %s",
                         path, t->name, fmt_shape(a, sizeof a, t->ndim, t->shape), p->name,
                         fmt_shape(b, sizeof b, nd, want));
            goto done;
        }
        if (p->n > tmp_cap) {
            free(tmp);
            tmp_cap = p->n;
            tmp = malloc(tmp_cap * sizeof *tmp);
            if (!tmp) {
                rc = tl_errf(e, TL_ENOMEM, "weights %s: out of memory for tensor '%s'", path,
                             t->name);
                goto done;
            }
        }
        rc = weights_st_to_f32(t, tmp, p->n, e);
        if (rc)
            goto done;
        transpose_in(net_param_data(n, p), tmp, p, kind);
        loaded[p - n->params] = 1;
    }
    if (strict && unused) {
        rc = tl_errf(e, TL_EFORMAT, "weights %s: tensor '%s' fits no parameter of the network",
                     path, unused);
        goto done;
    }
    for (int i = 0; strict && i < n->n_params; i++)
        if (!loaded[i]) {
            rc = tl_errf(e, TL_ENOTFOUND, "weights %s: no tensor '%s.%s' for parameter %s",
                         path, n->layers[n->params[i].layer].name,
                         net_load_torch_suffix(&n->params[i]), n->params[i].name);
            goto done;
        }
done:
    free(tmp);
    free(loaded);
    weights_st_close(st);
    return rc;
}
