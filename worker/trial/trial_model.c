/* The trial's model: the head from its text, the model spec, the backbone's
 * weights, a fresh head. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/rng.h"
#include "worker/net/net_io.h"
#include "worker/nn/backend.h"
#include "worker/trial/trial_int.h"

int trial_parse_head(const char *s, model_head_op **ops, int *n, tl_err *e)
{
    *ops = NULL;
    *n = 0;
    char *copy = strdup(s);
    model_head_op *v = calloc(MODEL_MAX_HEAD_OPS, sizeof *v);
    int rc = 0, k = 0;
    if (!copy || !v) {
        rc = tl_errf(e, TL_ENOMEM, "head: out of memory");
        goto out;
    }
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        if (k == MODEL_MAX_HEAD_OPS) {
            rc = tl_errf(e, TL_EINVAL, "head: more than %d layers", MODEL_MAX_HEAD_OPS);
            goto out;
        }
        model_head_op op = {0};
        char *end = NULL;
        if (!strcmp(tok, "gap") || !strcmp(tok, "global_average_pooling")) {
            op.kind = MODEL_HEAD_GAP;
        } else if (!strcmp(tok, "flatten")) {
            op.kind = MODEL_HEAD_FLATTEN;
        } else if (!strncmp(tok, "dense", 5)) {
            op.kind = MODEL_HEAD_DENSE;
            long u = strtol(tok + 5, &end, 10);
            op.units = (int)u;
            op.act = MODEL_ACT_RELU;
            if (end == tok + 5 || u < 1 || u > 1000000) {
                rc = tl_errf(e, TL_EINVAL, "head: '%s' needs a unit count (dense128)", tok);
                goto out;
            }
            if (!strcmp(end, "relu6"))
                op.act = MODEL_ACT_RELU6;
            else if (!strcmp(end, "linear"))
                op.act = MODEL_ACT_LINEAR;
            else if (*end && strcmp(end, "relu")) {
                rc = tl_errf(e, TL_EINVAL, "head: '%s': unknown activation '%s'", tok, end);
                goto out;
            }
        } else if (!strncmp(tok, "dropout", 7)) {
            op.kind = MODEL_HEAD_DROPOUT;
            op.rate = strtof(tok + 7, &end);
            if (end == tok + 7 || *end || !(op.rate >= 0 && op.rate < 1)) {
                rc = tl_errf(e, TL_EINVAL, "head: '%s' needs a rate in [0, 1) (dropout0.2)", tok);
                goto out;
            }
        } else {
            rc = tl_errf(e, TL_EINVAL,
                         "head: unknown layer '%s' (gap, flatten, dense<units>, dropout<rate>)",
                         tok);
            goto out;
        }
        v[k++] = op;
    }
    if (!k || (v[0].kind != MODEL_HEAD_GAP && v[0].kind != MODEL_HEAD_FLATTEN))
        rc = tl_errf(e, TL_EINVAL, "head: '%s' must start with gap or flatten", s);
out:
    free(copy);
    if (rc)
        free(v);
    else {
        *ops = v;
        *n = k;
    }
    return rc;
}

void trial__copy_params_by_name(net *to, net *from, int first_layer)
{
    for (int i = 0; i < from->n_params; i++) {
        const net_param *p = &from->params[i];
        if (p->layer < first_layer)
            continue;
        net_param *q = net_find_param(to, p->name);
        if (q && q->n == p->n)
            memcpy(to->weights + q->off, from->weights + p->off, p->n * sizeof(float));
    }
    net_weights_changed(to);
}

/* A fresh head from the trial's seed: Glorot uniform kernels, zero biases
 * (Keras Dense defaults). */
void trial__init_head(net *n, uint64_t seed)
{
    rng_state r;
    rng_init(&r, rng_mix(seed, 0x48454144ull));
    for (int i = 0; i < n->n_params; i++) {
        net_param *p = &n->params[i];
        if (p->layer <= n->features)
            continue;
        float *w = n->weights + p->off;
        if (p->ndim == 2) {
            float lim = sqrtf(6.0f / (float)(p->shape[0] + p->shape[1]));
            for (size_t k = 0; k < p->n; k++)
                w[k] = (2.0f * rng_uniform(&r) - 1.0f) * lim;
        } else {
            memset(w, 0, p->n * sizeof(float));
        }
    }
    net_weights_changed(n);
}

int trial__build_spec(trial__state *st, int size, tl_err *e)
{
    model_spec *s = &st->spec;
    const model_spec *w = st->W;
    const trial_cfg *cfg = st->cfg;
    const data_index *ix = st->im.ix;
    int rc = model_spec_set_str(&s->backbone, w->backbone, e);
    s->alpha = w->alpha;
    s->height = s->width = size;
    s->convention = w->convention;
    for (int i = 0; i < st->n_head && !rc; i++)
        rc = model_spec_add_head(s, st->head[i], e);
    s->num_classes = ix->n_classes;
    s->loss = MODEL_LOSS_SOFTMAX;
    s->mode = cfg->mode;
    s->fine_tune_at = cfg->mode == MODEL_FINE_TUNE_AT ? cfg->fine_tune_at : 0;
    s->preproc = w->preproc;
    for (int i = 0; i < ix->n_classes && !rc; i++)
        rc = model_spec_add_class(s, ix->classes[i], e);
    if (!rc)
        rc = model_spec_set_str(&s->source_path, w->source_path, e);
    if (!rc)
        rc = model_spec_set_str(&s->source_sha256, w->source_sha256, e);
    if (!rc)
        rc = model_spec_set_str(&s->importer, w->importer, e);
    if (!rc)
        rc = model_spec_set_str(&s->tlsweep_version, w->tlsweep_version, e);
    /* the precision this trial's nets are finalized in (the worker sets it
     * from the trial before trial_run) */
    if (!rc)
        rc = model_spec_set_str(&s->precision, nn_precision_name(nn_precision_get()), e);
    return rc;
}

/* Loads the backbone's tensors of ts into n; a backbone parameter the file
 * does not provide is an error. */
int trial__load_backbone(net *n, const tset *ts, const char *path, tl_err *e)
{
    net_load_summary sum;
    int rc = net_load_tset(n, ts, 0, 0, &sum, e);
    if (rc)
        return rc;
    int head = 0;
    for (int i = 0; i < n->n_params; i++)
        head += n->features >= 0 && n->params[i].layer > n->features;
    if (sum.missing > head || sum.matched == 0)
        return tl_errf(e, TL_ENOTFOUND, "%s: no weights for %s (%d backbone parameters missing)",
                       path, sum.missing > head ? sum.first_missing : "any parameter",
                       sum.missing - head);
    return 0;
}
