/* A written model run over images (see infer.h). */
#include "worker/engine/infer.h"

#include <stdlib.h>
#include <string.h>

#include "common/data/data_image.h"
#include "worker/engine/loader.h"
#include "worker/net/net_io.h"
#include "worker/nn/nn.h"

#define INFER_LOADER_THREADS 2

int infer_open(infer_model *m, const char *path, int backbone_only, int batch, tl_err *e)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    m->backbone_only = backbone_only;
    m->batch = batch;
    model_spec_init(&m->spec);
    tset_init(&m->tensors);
    int rc = model_read(path, &m->spec, &m->tensors, e);
    if (rc)
        goto fail;
    if (!m->spec.backbone || !m->spec.backbone[0]) {
        rc = tl_errf(e, TL_EFORMAT, "%s: the model file names no backbone", path);
        goto fail;
    }
    if (!backbone_only && m->spec.num_classes < 1) {
        rc = tl_errf(e, TL_EINVAL,
                     "%s: the model has no classifier (a backbone only: tlsweep embed reads it)",
                     path);
        goto fail;
    }
    /* a shallow copy: only the fields that decide the net change */
    model_spec s = m->spec;
    s.mode = MODEL_FROZEN;
    s.bn_update = 0;
    if (backbone_only) {
        s.num_classes = 0;
        s.n_head = 0;
    }
    if ((rc = net_build_from_spec(&m->net, &s, batch, e)))
        goto fail;
    m->have_net = 1;
    net_load_summary sum;
    if ((rc = net_load_tset(&m->net, &m->tensors, !backbone_only, !backbone_only, &sum, e)))
        goto fail;
    if (backbone_only && (sum.missing || !sum.matched)) {
        rc = tl_errf(e, TL_ENOTFOUND, "%s: no weights for %s (%d backbone parameters missing)",
                     path, sum.missing ? sum.first_missing : "any parameter", sum.missing);
        goto fail;
    }
    size_t row = (size_t)batch * net_last(&m->net)->c;
    if (backbone_only ? !(m->pooled = malloc(row * sizeof(float)))
                      : !(m->probs = malloc(row * sizeof(float))) ||
                            !(m->targets = malloc(row * sizeof(float))) ||
                            !(m->zeros = calloc((size_t)batch, sizeof(int)))) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* the weights now live in the net */
    tset_free(&m->tensors);
    tset_init(&m->tensors);
    return 0;
fail:
    infer_close(m);
    return rc;
}

void infer_close(infer_model *m)
{
    if (m->have_net)
        net_free(&m->net);
    m->have_net = 0;
    free(m->pooled);
    free(m->probs);
    free(m->targets);
    free(m->zeros);
    m->pooled = m->probs = m->targets = NULL;
    m->zeros = NULL;
    tset_free(&m->tensors);
    model_spec_free(&m->spec);
}

size_t infer_width(const infer_model *m)
{
    return (size_t)net_last(&m->net)->c;
}

/* rows (n, C) = mean over the h*w positions of x (n, h, w, C) */
static void global_average(float *rows, const float *x, int n, size_t hw, size_t C)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * hw * C;
        for (size_t c = 0; c < C; c++) {
            double s = 0;
            for (size_t p = 0; p < hw; p++)
                s += xi[p * C + c];
            rows[(size_t)i * C + c] = (float)(s / (double)hw);
        }
    }
}

static void report_bad(const data_item *item, size_t pos, const data_image_cfg *img,
                       data_image_ctx *dc, float *scratch, infer_bad_fn bad, void *u)
{
    /* The loader only counts bad files; decoding the file again here gives
     * its reason, and bad files are few. */
    tl_err te = {0};
    if (!dc || !scratch || data_image_load(dc, item->path, img, scratch, &te) == 0)
        tl_errf(&te, TL_EFORMAT, "%s: could not be decoded", item->path);
    bad(u, pos, te.msg);
}

int infer_run(infer_model *m, const data_item *items, size_t n, infer_rows_fn rows,
                  infer_bad_fn bad, void *u, tl_err *e)
{
    if (!n)
        return 0;
    const net_layer *last = net_last(&m->net);
    data_image_cfg img = {m->spec.width, m->spec.height, (data_preprocess)m->spec.preproc, 0, 0};
    size_t one = (size_t)img.width * img.height * 3;
    size_t B = (size_t)m->batch;
    size_t *ids = malloc(n * sizeof *ids);
    size_t *row_items = malloc(B * sizeof *row_items);
    float *xb = malloc(B * one * sizeof *xb);
    float *scratch = malloc(one * sizeof *scratch);
    data_image_ctx *dc = data_image_ctx_new();
    loader *L = NULL;
    int rc = 0;
    if (!ids || !row_items || !xb || !scratch || !dc) {
        rc = tl_errf(e, TL_ENOMEM, "%s: out of memory for batches of %zu images", m->path, B);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = i;
    loader_cfg lc = {
        .items = items,
        .ids = ids,
        .n_ids = n,
        .batch_size = m->batch,
        .image = img,
        .threads = INFER_LOADER_THREADS,
    };
    if ((rc = loader_open(&L, &lc, e)))
        goto out;
    size_t good = 0, done = 0;
    loader_batch b;
    int got;
    while ((got = loader_next(L, &b, e)) == 1) {
        size_t pos0 = b.index * B;
        int k = 0, clean = 1;
        for (int s = 0; s < b.n; s++)
            clean &= b.ids[s] == pos0 + (size_t)s;
        for (int s = 0; s < b.n; s++) {
            size_t pos = pos0 + (size_t)s;
            /* a bad image's slot holds a later image that did decode */
            if (b.ids[s] != pos) {
                report_bad(&items[pos], pos, &img, dc, scratch, bad, u);
                continue;
            }
            if (!clean)
                memcpy(xb + (size_t)k * one, b.x + (size_t)s * one, one * sizeof *xb);
            row_items[k++] = pos;
        }
        done = pos0 + (size_t)b.n;
        if (!k)
            continue;
        good += (size_t)k;
        net_forward(&m->net, clean ? b.x : xb, k, 0);
        const float *out = net_output(&m->net);
        if (m->backbone_only) {
            global_average(m->pooled, out, k, (size_t)last->h * last->w, (size_t)last->c);
            out = m->pooled;
        }
        if ((rc = rows(u, out, row_items, k)))
            goto out;
    }
    if (got < 0 && good == 0) {
        /* the loader's one error: not one image of the list decodes */
        for (size_t pos = done; pos < n; pos++)
            report_bad(&items[pos], pos, &img, dc, scratch, bad, u);
        got = 0;
    }
    rc = got;
out:
    if (L)
        loader_close(L);
    data_image_ctx_free(dc);
    free(scratch);
    free(xb);
    free(row_items);
    free(ids);
    return rc;
}

float infer_probabilities(infer_model *m, const float *logits, const int *labels, int n)
{
    int C = (int)infer_width(m);
    if (!labels)
        labels = m->zeros;
    if (m->spec.loss != MODEL_LOSS_SIGMOID)
        return nn_softmax_xent_forward(m->probs, logits, labels, n, C);
    memset(m->targets, 0, (size_t)n * C * sizeof *m->targets);
    for (int i = 0; i < n; i++)
        m->targets[(size_t)i * C + labels[i]] = 1.0f;
    return nn_sigmoid_bce_forward(m->probs, logits, m->targets, n, C);
}

const char *infer_reason(const char *msg, const char *path)
{
    size_t k = strlen(path);
    return !strncmp(msg, path, k) && msg[k] == ':' && msg[k + 1] == ' ' ? msg + k + 2 : msg;
}

int infer_parse_batch(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && !*end && v >= 1 && v <= 4096 ? (int)v : -1;
}
