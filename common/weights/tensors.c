#include "common/weights/tensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tset_init(tset *s)
{
    memset(s, 0, sizeof *s);
}

void tset_free(tset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].data);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

const tset_entry *tset_find(const tset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return &s->v[i];
    return NULL;
}

static int add_owned(tset *s, const char *name, int ndim, const int64_t *shape, float *data,
                     int check_dup, tl_err *e)
{
    if (ndim < 0 || ndim > TSET_MAX_DIMS) {
        free(data);
        return tl_errf(e, TL_EINVAL, "tensor '%s': %d dimensions (at most %d)", name, ndim,
                       TSET_MAX_DIMS);
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > SIZE_MAX / 4 / (size_t)shape[i])) {
            free(data);
            return tl_errf(e, TL_EINVAL, "tensor '%s': bad dimension %lld", name,
                           (long long)shape[i]);
        }
        n *= (size_t)shape[i];
    }
    if (check_dup && tset_find(s, name)) {
        free(data);
        return tl_errf(e, TL_EINVAL, "tensor '%s' appears twice", name);
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        tset_entry *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(data);
            return tl_errf(e, TL_ENOMEM, "tensor '%s': out of memory", name);
        }
        s->v = v;
        s->cap = cap;
    }
    tset_entry *t = &s->v[s->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        free(data);
        return tl_errf(e, TL_ENOMEM, "tensor '%s': out of memory", name);
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->n = n;
    t->data = data;
    s->n++;
    return 0;
}

int tset_add_owned(tset *s, const char *name, int ndim, const int64_t *shape, float *data,
                   tl_err *e)
{
    return add_owned(s, name, ndim, shape, data, 1, e);
}

int tset_push_owned(tset *s, const char *name, int ndim, const int64_t *shape, float *data,
                    tl_err *e)
{
    return add_owned(s, name, ndim, shape, data, 0, e);
}

int tset_add(tset *s, const char *name, int ndim, const int64_t *shape, const float *data,
             tl_err *e)
{
    size_t n = 1;
    for (int i = 0; i < ndim && i < TSET_MAX_DIMS; i++)
        n *= shape[i] > 0 ? (size_t)shape[i] : 0;
    float *copy = malloc((n ? n : 1) * sizeof *copy);
    if (!copy)
        return tl_errf(e, TL_ENOMEM, "tensor '%s': out of memory", name);
    if (n)
        memcpy(copy, data, n * sizeof *copy);
    return tset_add_owned(s, name, ndim, shape, copy, e);
}

int tset_check_finite(const tset *s, const char *source, tl_err *e)
{
    for (size_t i = 0; i < s->n; i++)
        for (size_t k = 0; k < s->v[i].n; k++)
            if (!isfinite(s->v[i].data[k]))
                return tl_errf(e, TL_EFORMAT, "%s: tensor '%s' has a non-finite value (%g) at %zu",
                               source, s->v[i].name, (double)s->v[i].data[k], k);
    return 0;
}

char *tset_shape_str(const int64_t *shape, int ndim, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    if (ndim == 0)
        snprintf(buf, n, "scalar");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? "x%lld" : "%lld", (long long)shape[i]);
    return buf;
}
