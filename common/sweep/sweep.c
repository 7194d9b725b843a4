/* The sweep file's rules: which keys each section takes and what each value
 * may be, checked by key path over the YAML checker's document
 * (yamlcheck.h, which words the messages), then the grid. */
#include "common/sweep/sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/cpu.h"
#include "common/base/fileio.h"
#include "common/sweep/yamlcheck.h"

/* Keeps a hostile file from costing more than a moment (the checker bounds
 * nesting and list lengths; grid lists are checked for repeats pairwise). */
enum { SWEEP_MAX_FILE = 1 << 20 };

/* The backbones as the worker builds them (worker/net/backbones.h). */
static const struct {
    const char *name;
    int min_size;
    const char *pre;   /* Keras applications' preprocess_input */
} backbone_table[] = {
    {"mobilenet_v2", 32, "tf"},
    {"resnet50", 32, "caffe"},
    {"vgg16", 32, "caffe"},
    {"inception_v3", 75, "tf"},
};
#define N_BACKBONES (int)(sizeof backbone_table / sizeof *backbone_table)
static const char *const backbone_names[] = {"mobilenet_v2", "resnet50", "vgg16", "inception_v3", NULL};
static const char *const optimizer_names[] = {"adam", "sgd", "rmsprop", NULL};
static const char *const metric_names[] = {"val_accuracy", "val_loss", "accuracy", "loss", NULL};
static const char *const act_names[] = {"linear", "relu", "relu6", NULL};
/* as nn_backend_name / nn_precision_name (worker/nn/backend.h) */
static const char *const engine_names[] = {"auto", "openblas", "onednn", NULL};
static const char *const precision_names[] = {"fp32", "bf16", NULL};

static int backbone_find(const char *name)
{
    for (int i = 0; i < N_BACKBONES; i++)
        if (strcmp(backbone_table[i].name, name) == 0)
            return i;
    return -1;
}

int sweep_backbone_min_size(const char *backbone)
{
    int i = backbone_find(backbone);
    return i < 0 ? -1 : backbone_table[i].min_size;
}

const char *sweep_backbone_preprocessing(const char *backbone)
{
    int i = backbone_find(backbone);
    return i < 0 ? NULL : backbone_table[i].pre;
}

const char *sweep_optimizer_name(sweep_optimizer o)
{
    return (unsigned)o < 3 ? optimizer_names[o] : "?";
}

const char *sweep_metric_name(sweep_metric m)
{
    return (unsigned)m < 4 ? metric_names[m] : "?";
}

double sweep_metric_of(sweep_metric m, double loss, double accuracy, double val_loss,
                       double val_accuracy)
{
    switch (m) {
    case SWEEP_VAL_LOSS: return val_loss;
    case SWEEP_ACCURACY: return accuracy;
    case SWEEP_LOSS: return loss;
    default: return val_accuracy;
    }
}

const char *sweep_engine_name(sweep_engine g)
{
    return (unsigned)g < 3 ? engine_names[g] : "?";
}

const char *sweep_precision_name(sweep_precision p)
{
    return (unsigned)p < 2 ? precision_names[p] : "?";
}

const char *sweep_search_name(sweep_search_method m)
{
    static const char *const names[] = {"grid", "random", "successive_halving", "asha"};
    return (unsigned)m < 4 ? names[m] : "?";
}

int sweep_draws(const sweep *s)
{
    return s->search == SWEEP_SEARCH_RANDOM || (sweep_has_rungs(s) && s->search_trials > 0);
}

int sweep_has_rungs(const sweep *s)
{
    return s->search == SWEEP_SEARCH_SHA || s->search == SWEEP_SEARCH_ASHA;
}

void sweep_mode_str(const sweep_mode *m, char *buf, size_t n)
{
    switch (m->kind) {
    case SWEEP_FROZEN: snprintf(buf, n, "frozen"); break;
    case SWEEP_FINE_TUNE: snprintf(buf, n, "fine_tune"); break;
    case SWEEP_FINE_TUNE_AT: snprintf(buf, n, "fine_tune_at: %d", m->fine_tune_at); break;
    case SWEEP_FROZEN_THEN_FINE_TUNE:
        snprintf(buf, n, "frozen %d, fine_tune_at: %d", m->frozen_epochs, m->fine_tune_at);
        break;
    }
}

int sweep_trial_uses_cache(const sweep_trial *t)
{
    return t->cache_group >= 0;
}

/* The checker and the sweep its rules fill. */
typedef struct {
    ycheck *y;
    sweep *s;
    yaml_node_t *search_metric_node; /* search.metric when given (else select's) */
} ctx;

/* ---- sections ----------------------------------------------------------- */

static int parse_augment(ctx *c, yaml_node_t *m, const char *path, data_augment_cfg *a)
{
    static const char *const keys[] = {"horizontal_flip", "rotation_range", "width_shift_range",
                                       "height_shift_range", "zoom_range", "brightness_range",
                                       "contrast", NULL};
    yaml_node_t *v[7];
    char kp[256];
    double d;
    if (ycheck_map(c->y, m, path, keys, v, "a mapping"))
        return TL_EINVAL;
    if (v[0]) {
        ycheck_join(kp, sizeof kp, path, keys[0]);
        if (ycheck_bool(c->y, v[0], kp, &a->horizontal_flip))
            return TL_EINVAL;
    }
    if (v[1]) {
        ycheck_join(kp, sizeof kp, path, keys[1]);
        if (ycheck_range(c->y, v[1], kp, "degrees in [0, 180]", 0, 0, 180, 0, &d))
            return TL_EINVAL;
        a->rotation_range = (float)d;
    }
    for (int k = 2; k <= 3; k++)
        if (v[k]) {
            ycheck_join(kp, sizeof kp, path, keys[k]);
            if (ycheck_range(c->y, v[k], kp, "a fraction in [0, 1)", 0, 0, 1, 1, &d))
                return TL_EINVAL;
            *(k == 2 ? &a->width_shift_range : &a->height_shift_range) = (float)d;
        }
    /* zoom_range: z (Keras: [1-z, 1+z]) or [lo, hi]; brightness_range: [lo, hi] */
    for (int k = 4; k <= 5; k++) {
        if (!v[k])
            continue;
        ycheck_join(kp, sizeof kp, path, keys[k]);
        float *r = k == 4 ? a->zoom_range : a->brightness_range;
        if (k == 4 && ycheck_is_scalar(v[k])) {
            if (ycheck_range(c->y, v[k], kp, "a number in [0, 1) or a list [lo, hi]", 0, 0, 1, 1, &d))
                return TL_EINVAL;
            r[0] = (float)(1 - d);
            r[1] = (float)(1 + d);
            continue;
        }
        const char *exp = k == 4 ? "a number in [0, 1) or a list [lo, hi] with 0 < lo <= hi"
                                 : "a list [lo, hi] with 0 < lo <= hi";
        if (v[k]->type != YAML_SEQUENCE_NODE ||
            v[k]->data.sequence.items.top - v[k]->data.sequence.items.start != 2)
            return ycheck_fail_got(c->y, v[k], kp, exp);
        double lh[2];
        for (int i = 0; i < 2; i++) {
            yaml_node_t *it = ycheck_node(c->y, v[k]->data.sequence.items.start[i]);
            char ip[280];
            snprintf(ip, sizeof ip, "%s[%d]", kp, i);
            if (!it || ycheck_range(c->y, it, ip, "a number > 0", 0, 1, 100, 0, &lh[i]))
                return it ? TL_EINVAL : ycheck_fail(c->y, v[k], kp, "malformed list");
        }
        if (lh[0] > lh[1])
            return ycheck_fail(c->y, v[k], kp, "expected [lo, hi] with lo <= hi");
        r[0] = (float)lh[0];
        r[1] = (float)lh[1];
    }
    if (v[6]) {
        ycheck_join(kp, sizeof kp, path, keys[6]);
        if (ycheck_range(c->y, v[6], kp, "a factor in [0, 1)", 0, 0, 1, 1, &d))
            return TL_EINVAL;
        a->contrast = (float)d;
    }
    return 0;
}

static int parse_data(ctx *c, yaml_node_t *m, yaml_node_t **image_size_node)
{
    static const char *const keys[] = {"train_dir", "val_dir", "test_dir", "validation_split",
                                       "image_size", "seed", "augment", NULL};
    yaml_node_t *v[7];
    sweep *s = c->s;
    if (ycheck_map(c->y, m, "data", keys, v, "a mapping"))
        return TL_EINVAL;
    if (!v[0])
        return ycheck_fail(c->y, m, "data.train_dir", "missing (required: a folder with one sub-folder per class)");
    if (ycheck_str(c->y, v[0], "data.train_dir", "a folder", &s->train_dir) ||
        (v[1] && ycheck_str(c->y, v[1], "data.val_dir", "a folder", &s->val_dir)) ||
        (v[2] && ycheck_str(c->y, v[2], "data.test_dir", "a folder", &s->test_dir)))
        return TL_EINVAL;
    if (v[3] && ycheck_range(c->y, v[3], "data.validation_split", "a fraction in [0, 1)", 0, 0, 1, 1,
                          &s->validation_split))
        return TL_EINVAL;
    if (v[1] && s->validation_split > 0)
        return ycheck_fail(c->y, v[3], "data.validation_split", "give val_dir or validation_split, not both");
    if (v[4] && ycheck_int(c->y, v[4], "data.image_size", "a whole number of pixels >= 32", 32, 4096,
                        &s->image_size))
        return TL_EINVAL;
    *image_size_node = v[4];
    if (v[5] && ycheck_u64(c->y, v[5], "data.seed", &s->data_seed))
        return TL_EINVAL;
    if (v[6] && parse_augment(c, v[6], "data.augment", &s->augment))
        return TL_EINVAL;
    return 0;
}

/* A head's layers (model.head's vocabulary) at n into *h. */
static int parse_head_ops(ctx *c, yaml_node_t *n, const char *path, sweep_head *h)
{
    static const char *const ops[] = {"global_average_pooling", "flatten", NULL};
    static const char *const okeys[] = {"dense", "activation", "dropout", NULL};
    static const char *const expected =
        "global_average_pooling, flatten, {dense: N, activation: relu|relu6|linear} or {dropout: RATE}";
    ycheck_items l;
    int rc = ycheck_list(c->y, n, path, &l);
    if (rc)
        return rc;
    if (l.n > SWEEP_MAX_HEAD_OPS) {
        free(l.items);
        return ycheck_fail(c->y, n, path, "expected at most %d layers, got %d", SWEEP_MAX_HEAD_OPS,
                           l.n);
    }
    h->op = calloc((size_t)l.n, sizeof *h->op);
    if (!h->op) {
        free(l.items);
        return ycheck_nomem(c->y);
    }
    for (int i = 0; i < l.n && !rc; i++) {
        char ip[96];
        ycheck_item_path(ip, sizeof ip, path, &l, i);
        yaml_node_t *it = l.items[i];
        sweep_head_op *op = &h->op[i];
        if (ycheck_is_scalar(it)) {
            int k;
            if ((rc = ycheck_enum(c->y, it, ip, "head layer", ops, &k)))
                break;
            op->kind = k == 0 ? SWEEP_HEAD_GAP : SWEEP_HEAD_FLATTEN;
            h->n++;
            continue;
        }
        if (it->type != YAML_MAPPING_NODE) {
            rc = ycheck_fail_got(c->y, it, ip, expected);
            break;
        }
        yaml_node_t *o[3];
        if ((rc = ycheck_map(c->y, it, ip, okeys, o, expected)))
            break;
        char kp[128];
        if (o[0] && o[2]) {
            ycheck_join(kp, sizeof kp, ip, "dropout");
            rc = ycheck_fail(c->y, o[2], kp, "a layer is dense or dropout, not both");
        } else if (o[0]) {
            op->kind = SWEEP_HEAD_DENSE;
            op->act = SWEEP_ACT_LINEAR;
            ycheck_join(kp, sizeof kp, ip, "dense");
            rc = ycheck_int(c->y, o[0], kp, "units: a whole number in [1, 1048576]", 1, 1 << 20, &op->units);
            if (!rc && o[1]) {
                int a;
                ycheck_join(kp, sizeof kp, ip, "activation");
                rc = ycheck_enum(c->y, o[1], kp, "activation", act_names, &a);
                op->act = (sweep_act)a;
            }
        } else if (o[2]) {
            double r;
            op->kind = SWEEP_HEAD_DROPOUT;
            ycheck_join(kp, sizeof kp, ip, "dropout");
            if (o[1]) {
                ycheck_join(kp, sizeof kp, ip, "activation");
                rc = ycheck_fail(c->y, o[1], kp, "dropout takes no activation");
            } else if (!(rc = ycheck_range(c->y, o[2], kp, "a rate in [0, 1)", 0, 0, 1, 1, &r))) {
                op->rate = (float)r;
            }
        } else {
            rc = ycheck_fail_got(c->y, it, ip, expected);
        }
        if (!rc)
            h->n++;
    }
    free(l.items);
    return rc;
}

static int parse_head(ctx *c, yaml_node_t *m)
{
    static const char *const mkeys[] = {"head", NULL};
    yaml_node_t *v[1];
    sweep *s = c->s;
    if (ycheck_map(c->y, m, "model", mkeys, v, "a mapping"))
        return TL_EINVAL;
    if (!v[0])
        return 0;
    sweep_head h = {0};
    int rc = parse_head_ops(c, v[0], "model.head", &h);
    s->head = h.op;
    s->n_head = h.n;
    return rc;
}

static int parse_weights(ctx *c, yaml_node_t *m)
{
    sweep *s = c->s;
    if (m->type != YAML_MAPPING_NODE)
        return ycheck_fail_got(c->y, m, "weights", "a mapping of backbone: path");
    ptrdiff_t cnt = m->data.mapping.pairs.top - m->data.mapping.pairs.start;
    s->weights = calloc((size_t)cnt + 1, sizeof *s->weights);
    if (!s->weights)
        return ycheck_nomem(c->y);
    yaml_node_t *seen[N_BACKBONES] = {0};
    for (ptrdiff_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *kv = &m->data.mapping.pairs.start[i];
        yaml_node_t *k = ycheck_node(c->y, kv->key), *v = ycheck_node(c->y, kv->value);
        if (!k || !v)
            return ycheck_fail(c->y, m, "weights", "malformed mapping");
        char kp[96], word[64];
        if (!ycheck_is_scalar(k))
            return ycheck_fail_got(c->y, k, "weights", "a backbone name");
        ycheck_show(k, word, sizeof word);
        ycheck_join(kp, sizeof kp, "weights", word);
        int b = backbone_find(ycheck_text(k));
        if (b < 0)
            return ycheck_fail_unknown(c->y, k, kp, "backbone", backbone_names);
        if (seen[b])
            return ycheck_fail(c->y, k, kp, "duplicate key (first given on line %lu)",
                        (unsigned long)seen[b]->start_mark.line + 1);
        seen[b] = k;
        sweep_weights *w = &s->weights[s->n_weights];
        w->backbone = backbone_table[b].name;
        if (ycheck_str(c->y, v, kp, "a path to a local weights file", &w->path))
            return TL_EINVAL;
        s->n_weights++;
    }
    return 0;
}

const char *sweep_weights_path(const sweep *s, const char *backbone)
{
    for (int i = 0; i < s->n_weights; i++)
        if (!strcmp(s->weights[i].backbone, backbone))
            return s->weights[i].path;
    return NULL;
}

static int parse_mode(ctx *c, yaml_node_t *it, const char *ip, sweep_mode *md)
{
    static const char *const names[] = {"frozen", "fine_tune", NULL};
    static const char *const mkeys[] = {"fine_tune_at", "frozen_then_fine_tune", NULL};
    static const char *const fkeys[] = {"fine_tune_at", "epochs", NULL};
    static const char *const expected =
        "frozen, fine_tune, {fine_tune_at: N} or {frozen_then_fine_tune: {fine_tune_at: N, epochs: E}}";
    memset(md, 0, sizeof *md);
    if (ycheck_is_scalar(it)) {
        int k;
        if (ycheck_enum(c->y, it, ip, "mode", names, &k))
            return TL_EINVAL;
        md->kind = k == 0 ? SWEEP_FROZEN : SWEEP_FINE_TUNE;
        return 0;
    }
    if (it->type != YAML_MAPPING_NODE)
        return ycheck_fail_got(c->y, it, ip, expected);
    yaml_node_t *v[2];
    char kp[128], kp2[160];
    if (ycheck_map(c->y, it, ip, mkeys, v, expected))
        return TL_EINVAL;
    if ((v[0] && v[1]) || (!v[0] && !v[1]))
        return ycheck_fail_got(c->y, it, ip, expected);
    if (v[0]) {
        md->kind = SWEEP_FINE_TUNE_AT;
        ycheck_join(kp, sizeof kp, ip, "fine_tune_at");
        return ycheck_int(c->y, v[0], kp, "a layer index >= 0", 0, 1000000, &md->fine_tune_at);
    }
    md->kind = SWEEP_FROZEN_THEN_FINE_TUNE;
    ycheck_join(kp, sizeof kp, ip, "frozen_then_fine_tune");
    yaml_node_t *f[2];
    if (ycheck_map(c->y, v[1], kp, fkeys, f, "{fine_tune_at: N, epochs: E}"))
        return TL_EINVAL;
    if (!f[0] || !f[1]) {
        ycheck_join(kp2, sizeof kp2, kp, f[0] ? "epochs" : "fine_tune_at");
        return ycheck_fail(c->y, v[1], kp2, "missing (expected {fine_tune_at: N, epochs: E})");
    }
    ycheck_join(kp2, sizeof kp2, kp, "fine_tune_at");
    if (ycheck_int(c->y, f[0], kp2, "a layer index >= 0", 0, 1000000, &md->fine_tune_at))
        return TL_EINVAL;
    ycheck_join(kp2, sizeof kp2, kp, "epochs");
    if (ycheck_int(c->y, f[1], kp2, "a whole number >= 1", 1, 1000000, &md->frozen_epochs))
        return TL_EINVAL;
    if (md->frozen_epochs >= c->s->epochs)
        return ycheck_fail(c->y, f[1], kp2, "expected fewer frozen epochs than epochs (%d): the fine-tune stage runs the rest",
                    c->s->epochs);
    return 0;
}

static int parse_sched(ctx *c, yaml_node_t *it, const char *ip, sweep_sched *sc)
{
    static const char *const names[] = {"constant", "cosine", NULL};
    static const char *const mkeys[] = {"step", NULL};
    static const char *const skeys[] = {"every", "factor", NULL};
    static const char *const expected = "constant, cosine or {step: {every: EPOCHS, factor: F}}";
    memset(sc, 0, sizeof *sc);
    if (ycheck_is_scalar(it)) {
        int k;
        if (ycheck_enum(c->y, it, ip, "schedule", names, &k))
            return TL_EINVAL;
        sc->kind = k == 0 ? SWEEP_SCHED_CONSTANT : SWEEP_SCHED_COSINE;
        return 0;
    }
    yaml_node_t *v[1], *f[2];
    char kp[128], kp2[160];
    if (ycheck_map(c->y, it, ip, mkeys, v, expected))
        return TL_EINVAL;
    if (!v[0])
        return ycheck_fail_got(c->y, it, ip, expected);
    ycheck_join(kp, sizeof kp, ip, "step");
    if (ycheck_map(c->y, v[0], kp, skeys, f, "{every: EPOCHS, factor: F}"))
        return TL_EINVAL;
    if (!f[0] || !f[1]) {
        ycheck_join(kp2, sizeof kp2, kp, f[0] ? "factor" : "every");
        return ycheck_fail(c->y, v[0], kp2, "missing (expected {every: EPOCHS, factor: F})");
    }
    sc->kind = SWEEP_SCHED_STEP;
    ycheck_join(kp2, sizeof kp2, kp, "every");
    if (ycheck_int(c->y, f[0], kp2, "a whole number of epochs >= 1", 1, 1000000, &sc->every_epochs))
        return TL_EINVAL;
    ycheck_join(kp2, sizeof kp2, kp, "factor");
    return ycheck_range(c->y, f[1], kp2, "a factor in (0, 1]", 0, 1, 1, 0, &sc->factor);
}

static int same_mode(const sweep_mode *a, const sweep_mode *b)
{
    return a->kind == b->kind && a->fine_tune_at == b->fine_tune_at && a->frozen_epochs == b->frozen_epochs;
}

static int same_sched(const sweep_sched *a, const sweep_sched *b)
{
    return a->kind == b->kind && a->every_epochs == b->every_epochs && a->factor == b->factor;
}

/* Parses one grid list into *arr (elem bytes each) with fn per item, and
 * refuses a value given twice (its trials would have the same id). */
typedef int (*item_fn)(ctx *c, yaml_node_t *it, const char *ip, void *out);
typedef int (*same_fn)(const void *a, const void *b);

static int parse_list(ctx *c, yaml_node_t *n, const char *path, size_t elem, item_fn fn,
                      same_fn same, void **arr, int *count, yaml_node_t ***nodes)
{
    ycheck_items l;
    int rc = ycheck_list(c->y, n, path, &l);
    if (rc) {
        free(l.items);
        return rc;
    }
    char *a = calloc((size_t)l.n, elem);
    if (!a) {
        free(l.items);
        return ycheck_nomem(c->y);
    }
    *arr = a;
    for (int i = 0; i < l.n && !rc; i++) {
        char ip[96];
        ycheck_item_path(ip, sizeof ip, path, &l, i);
        if ((rc = fn(c, l.items[i], ip, a + (size_t)i * elem)))
            break;
        *count = i + 1;
        for (int j = 0; j < i; j++)
            if (same(a + (size_t)j * elem, a + (size_t)i * elem)) {
                char jp[96];
                ycheck_item_path(jp, sizeof jp, path, &l, j);
                rc = ycheck_fail(c->y, l.items[i], ip, "duplicate value (same as %s)", jp);
                break;
            }
    }
    if (!rc && nodes)
        *nodes = l.items;
    else
        free(l.items);
    return rc;
}

static int it_backbone(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    int k;
    if (ycheck_enum(c->y, it, ip, "backbone", backbone_names, &k))
        return TL_EINVAL;
    *(const char **)out = backbone_table[k].name;
    return 0;
}
static int it_mode(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return parse_mode(c, it, ip, out);
}
static int it_lr(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return ycheck_range(c->y, it, ip, "a number > 0", 0, 1, 1e3, 0, out);
}
static int it_opt(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    int k;
    if (ycheck_enum(c->y, it, ip, "optimizer", optimizer_names, &k))
        return TL_EINVAL;
    *(sweep_optimizer *)out = (sweep_optimizer)k;
    return 0;
}
static int it_batch(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return ycheck_int(c->y, it, ip, "a whole number >= 1", 1, 1 << 20, out);
}
static int it_wd(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return ycheck_range(c->y, it, ip, "a number >= 0", 0, 0, 1e3, 0, out);
}
static int it_fraction(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return ycheck_range(c->y, it, ip, "a number in [0, 1)", 0, 0, 1, 1, out);
}
static int it_sched(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return parse_sched(c, it, ip, out);
}

/* Where n stands, for a check after the parse. */
static void mark(sweep_at *at, const yaml_node_t *n, const char *path)
{
    at->line = (int)n->start_mark.line + 1;
    at->col = (int)n->start_mark.column + 1;
    size_t len = strlen(path);
    if (len >= sizeof at->path)
        len = sizeof at->path - 1;   /* the key paths given here are short */
    memcpy(at->path, path, len);
    at->path[len] = '\0';
}

static int it_precision(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    int k;
    if (ycheck_enum(c->y, it, ip, "precision", precision_names, &k))
        return TL_EINVAL;
    *(sweep_precision *)out = (sweep_precision)k;
    if (k == SWEEP_BF16 && !c->s->bf16_at.line)
        mark(&c->s->bf16_at, it, ip);
    return 0;
}

/* grid.head: each item a whole head, so a list of lists. */
static int it_head(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    if (it->type != YAML_SEQUENCE_NODE)
        return ycheck_fail_got(c->y, it, ip, "a head: a list such as [global_average_pooling, "
                               "{dense: 128, activation: relu}]");
    sweep_head *h = out;
    int rc = parse_head_ops(c, it, ip, h);
    if (rc) {
        /* not counted in the list yet: sweep_free would not see it */
        free(h->op);
        h->op = NULL;
    }
    return rc;
}
static int it_dense_units(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return ycheck_int(c->y, it, ip, "units: a whole number in [1, 1048576]", 1, 1 << 20, out);
}
static int it_augment(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    static const char *const presets[] = {"none", "light", "strong", NULL};
    sweep_augment *a = out;
    data_augment_cfg_default(&a->cfg);
    if (it->type == YAML_MAPPING_NODE)
        return parse_augment(c, it, ip, &a->cfg);
    if (!ycheck_is_scalar(it))
        return ycheck_fail_got(c->y, it, ip, "none, light, strong or a mapping as data.augment takes");
    int k;
    if (ycheck_enum(c->y, it, ip, "augment preset", presets, &k))
        return TL_EINVAL;
    a->preset = presets[k];
    return sweep_augment_preset(a->preset, &a->cfg);
}
/* Each size fits every backbone of the grid (parsed before it). */
static int it_image_size(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    int *size = out;
    if (ycheck_int(c->y, it, ip, "a whole number of pixels >= 32", 32, 4096, size))
        return TL_EINVAL;
    for (int i = 0; i < c->s->n_backbones; i++) {
        int min = sweep_backbone_min_size(c->s->backbones[i]);
        if (*size < min)
            return ycheck_fail(c->y, it, ip, "expected at least %d for %s, got %d", min,
                               c->s->backbones[i], *size);
    }
    return 0;
}

static int same_str(const void *a, const void *b)
{
    return !strcmp(*(const char *const *)a, *(const char *const *)b);
}
static int same_mode_v(const void *a, const void *b)
{
    return same_mode(a, b);
}
static int same_double(const void *a, const void *b)
{
    return *(const double *)a == *(const double *)b;
}
static int same_int(const void *a, const void *b)
{
    return *(const int *)a == *(const int *)b;
}
static int same_sched_v(const void *a, const void *b)
{
    return same_sched(a, b);
}
static int same_head(const void *a, const void *b)
{
    const sweep_head *x = a, *y = b;
    return x->n == y->n && !memcmp(x->op, y->op, (size_t)x->n * sizeof *x->op);
}
static int same_augment(const void *a, const void *b)
{
    /* the configuration's fields are all 4 bytes wide: no padding */
    return !memcmp(&((const sweep_augment *)a)->cfg, &((const sweep_augment *)b)->cfg,
                   sizeof(data_augment_cfg));
}

/* ---- sampled axes ---------------------------------------------------------- */

static const char *const dist_names[] = {"choice", "uniform", "log_uniform", "int_uniform", NULL};
enum { DIST_UNIFORM = 1 << SWEEP_DIST_UNIFORM, DIST_LOG = 1 << SWEEP_DIST_LOG_UNIFORM,
       DIST_INT = 1 << SWEEP_DIST_INT_UNIFORM };

/* A mapping whose first key names a distribution: {choice: ...}, {uniform: ...}. */
static int is_dist_map(ctx *c, const yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE || n->data.mapping.pairs.start == n->data.mapping.pairs.top)
        return 0;
    yaml_node_t *k = ycheck_node(c->y, n->data.mapping.pairs.start[0].key);
    if (!k || !ycheck_is_scalar(k))
        return 0;
    for (int i = 0; dist_names[i]; i++)
        if (!strcmp(ycheck_text(k), dist_names[i]))
            return 1;
    return 0;
}

/* One bound of a range, checked as the axis checks its values. */
static int dist_bound(ctx *c, yaml_node_t *it, const char *ip, item_fn fn, int is_int, double *out)
{
    union { double d; int i; } v;
    if (fn(c, it, ip, &v))
        return TL_EINVAL;
    *out = is_int ? v.i : v.d;
    return 0;
}

/* {uniform|log_uniform|int_uniform: [low, high]} at vn (path kp) into d. */
static int parse_range(ctx *c, yaml_node_t *vn, const char *kp, sweep_dist_kind kind, item_fn fn,
                       sweep_dist *d)
{
    if (vn->type != YAML_SEQUENCE_NODE ||
        vn->data.sequence.items.top - vn->data.sequence.items.start != 2)
        return ycheck_fail_got(c->y, vn, kp, "[low, high]");
    double lh[2];
    for (int i = 0; i < 2; i++) {
        yaml_node_t *it = ycheck_node(c->y, vn->data.sequence.items.start[i]);
        char ip[160];
        snprintf(ip, sizeof ip, "%s[%d]", kp, i);
        if (!it)
            return ycheck_fail(c->y, vn, kp, "malformed list");
        if (dist_bound(c, it, ip, fn, kind == SWEEP_DIST_INT_UNIFORM, &lh[i]))
            return TL_EINVAL;
        if (kind == SWEEP_DIST_LOG_UNIFORM && !(lh[i] > 0))
            return ycheck_fail_got(c->y, it, ip, "a number > 0 (log_uniform takes logarithms)");
    }
    if (!(lh[0] < lh[1]))
        return ycheck_fail(c->y, vn, kp, "expected [low, high] with low < high, got [%.17g, %.17g]",
                           lh[0], lh[1]);
    d->kind = kind;
    d->lo = lh[0];
    d->hi = lh[1];
    return 0;
}

/* A grid axis: a list (parse_list), {choice: LIST} (the same list), or,
 * where `sampled` allows it, a range to sample into *dist, leaving a
 * one-element list (the low end) in *arr. sampled_at keeps the first. */
static int parse_axis(ctx *c, yaml_node_t *n, const char *path, size_t elem, item_fn fn,
                      same_fn same, void **arr, int *count, int sampled, sweep_dist *dist)
{
    if (!is_dist_map(c, n))
        return parse_list(c, n, path, elem, fn, same, arr, count, NULL);
    char exp[160] = "a list or {choice: [...]}";
    for (int k = SWEEP_DIST_UNIFORM; k <= SWEEP_DIST_INT_UNIFORM; k++)
        if (sampled & (1 << k)) {
            size_t l = strlen(exp);
            snprintf(exp + l, sizeof exp - l, " or {%s: [low, high]}", dist_names[k]);
        }
    yaml_node_t *v[4];
    if (ycheck_map(c->y, n, path, dist_names, v, exp))
        return TL_EINVAL;
    int given = -1;
    for (int k = 0; k < 4; k++)
        if (v[k]) {
            if (given >= 0)
                return ycheck_fail_got(c->y, n, path, exp);
            given = k;
        }
    char kp[128];
    ycheck_join(kp, sizeof kp, path, dist_names[given]);
    if (given == 0)
        return parse_list(c, v[0], kp, elem, fn, same, arr, count, NULL);
    if (!(sampled & (1 << given)))
        return ycheck_fail(c->y, v[given], kp, "expected %s (this axis does not sample %s)", exp,
                           dist_names[given]);
    if (parse_range(c, v[given], kp, (sweep_dist_kind)given, fn, dist))
        return TL_EINVAL;
    char *a = calloc(1, elem);
    if (!a)
        return ycheck_nomem(c->y);
    *arr = a;
    *count = 1;
    if (elem == sizeof(int) && given == SWEEP_DIST_INT_UNIFORM)
        *(int *)a = (int)dist->lo;
    else
        *(double *)a = dist->lo;
    if (!c->s->sampled_at.line)
        mark(&c->s->sampled_at, v[given], kp);
    return 0;
}

/* grid.head, or its parts grid.dense_units and grid.dropout (v: the three
 * values, NULL where absent); a file gives one or the other. */
static int parse_head_axes(ctx *c, yaml_node_t **v)
{
    sweep *s = c->s;
    if (v[0] && (v[1] || v[2]))
        return ycheck_fail(c->y, v[1] ? v[1] : v[2], v[1] ? "grid.dense_units" : "grid.dropout",
                           "give grid.head or its parts (grid.dense_units, grid.dropout), not both");
    int rc = 0;
    if (v[0])
        rc = parse_axis(c, v[0], "grid.head", sizeof(sweep_head), it_head, same_head,
                        (void **)&s->heads, &s->n_heads, 0, NULL);
    if (!rc && v[1])
        rc = parse_axis(c, v[1], "grid.dense_units", sizeof(int), it_dense_units, same_int,
                        (void **)&s->dense_units, &s->n_dense_units, DIST_INT, &s->du_dist);
    if (!rc && v[2])
        rc = parse_axis(c, v[2], "grid.dropout", sizeof(double), it_fraction, same_double,
                        (void **)&s->dropouts, &s->n_dropouts, DIST_UNIFORM, &s->do_dist);
    return rc;
}

/* bb_list: grid.backbone's node (the list of its {choice: ...}); bb_nodes:
 * its items; bb_path: its key path (for later messages). */
static int parse_grid(ctx *c, yaml_node_t *m, yaml_node_t *root, yaml_node_t **bb_list,
                      yaml_node_t ***bb_nodes, const char **bb_path)
{
    static const char *const keys[] = {"backbone", "mode", "learning_rate", "optimizer",
                                       "batch_size", "weight_decay", "momentum", "schedule",
                                       "precision", "label_smoothing", "head", "dense_units",
                                       "dropout", "augment", "image_size", NULL};
    yaml_node_t *v[15];
    sweep *s = c->s;
    if (!m)
        return ycheck_fail(c->y, root, "grid.backbone", "missing (required: the backbones to sweep)");
    if (ycheck_map(c->y, m, "grid", keys, v, "a mapping"))
        return TL_EINVAL;
    if (!v[0])
        return ycheck_fail(c->y, m, "grid.backbone", "missing (required: the backbones to sweep)");
    *bb_path = "grid.backbone";
    if (is_dist_map(c, v[0])) {
        yaml_node_t *d[4];
        if (ycheck_map(c->y, v[0], *bb_path, dist_names, d, "a list or {choice: [...]}"))
            return TL_EINVAL;
        for (int k = 1; k < 4; k++)
            if (d[k] || !d[0])
                return ycheck_fail_got(c->y, v[0], *bb_path, "a list or {choice: [...]}");
        v[0] = d[0];
        *bb_path = "grid.backbone.choice";
    }
    *bb_list = v[0];
    int rc = parse_list(c, v[0], *bb_path, sizeof(char *), it_backbone, same_str,
                        (void **)&s->backbones, &s->n_backbones, bb_nodes);
    if (!rc && v[1])
        rc = parse_axis(c, v[1], "grid.mode", sizeof(sweep_mode), it_mode, same_mode_v,
                        (void **)&s->modes, &s->n_modes, 0, NULL);
    if (!rc && v[2])
        rc = parse_axis(c, v[2], "grid.learning_rate", sizeof(double), it_lr, same_double,
                        (void **)&s->learning_rates, &s->n_learning_rates, DIST_UNIFORM | DIST_LOG,
                        &s->lr_dist);
    if (!rc && v[3])
        rc = parse_axis(c, v[3], "grid.optimizer", sizeof(sweep_optimizer), it_opt, same_int,
                        (void **)&s->optimizers, &s->n_optimizers, 0, NULL);
    if (!rc && v[4])
        rc = parse_axis(c, v[4], "grid.batch_size", sizeof(int), it_batch, same_int,
                        (void **)&s->batch_sizes, &s->n_batch_sizes, DIST_INT, &s->batch_dist);
    if (!rc && v[5])
        rc = parse_axis(c, v[5], "grid.weight_decay", sizeof(double), it_wd, same_double,
                        (void **)&s->weight_decays, &s->n_weight_decays, DIST_UNIFORM | DIST_LOG,
                        &s->wd_dist);
    if (!rc && v[6])
        rc = parse_axis(c, v[6], "grid.momentum", sizeof(double), it_fraction, same_double,
                        (void **)&s->momenta, &s->n_momenta, DIST_UNIFORM, &s->mom_dist);
    if (!rc && v[7])
        rc = parse_axis(c, v[7], "grid.schedule", sizeof(sweep_sched), it_sched, same_sched_v,
                        (void **)&s->scheds, &s->n_scheds, 0, NULL);
    if (!rc && v[8])
        rc = parse_axis(c, v[8], "grid.precision", sizeof(sweep_precision), it_precision,
                        same_int, (void **)&s->precisions, &s->n_precisions, 0, NULL);
    if (!rc && v[9])
        rc = parse_axis(c, v[9], "grid.label_smoothing", sizeof(double), it_fraction, same_double,
                        (void **)&s->label_smoothings, &s->n_label_smoothings, DIST_UNIFORM,
                        &s->ls_dist);
    if (!rc)
        rc = parse_head_axes(c, v + 10);
    if (!rc && v[13])
        rc = parse_axis(c, v[13], "grid.augment", sizeof(sweep_augment), it_augment,
                        same_augment, (void **)&s->augments, &s->n_augments, 0, NULL);
    if (!rc && v[14])
        rc = parse_axis(c, v[14], "grid.image_size", sizeof(int), it_image_size, same_int,
                        (void **)&s->image_sizes, &s->n_image_sizes, 0, NULL);
    if (rc)
        return rc;
    /* Keras defaults for what the file leaves out */
    if (!s->modes && !(s->modes = calloc(1, sizeof *s->modes)))
        return TL_ENOMEM;
    if (!s->n_modes)
        s->n_modes = 1;   /* frozen */
    if (!s->learning_rates && !(s->learning_rates = malloc(sizeof *s->learning_rates)))
        return TL_ENOMEM;
    if (!s->n_learning_rates) {
        s->learning_rates[0] = 1e-3;
        s->n_learning_rates = 1;
    }
    if (!s->optimizers && !(s->optimizers = calloc(1, sizeof *s->optimizers)))
        return TL_ENOMEM;
    if (!s->n_optimizers)
        s->n_optimizers = 1;   /* adam */
    if (!s->batch_sizes && !(s->batch_sizes = malloc(sizeof *s->batch_sizes)))
        return TL_ENOMEM;
    if (!s->n_batch_sizes) {
        s->batch_sizes[0] = 32;
        s->n_batch_sizes = 1;
    }
    return 0;
}

static int parse_select(ctx *c, yaml_node_t *m, yaml_node_t **metric_node)
{
    static const char *const keys[] = {"metric", "goal", NULL};
    static const char *const goals[] = {"max", "min", NULL};
    yaml_node_t *v[2];
    sweep *s = c->s;
    if (ycheck_map(c->y, m, "select", keys, v, "{metric: val_accuracy|val_loss|accuracy|loss, goal: max|min}"))
        return TL_EINVAL;
    int k;
    if (v[0]) {
        if (ycheck_enum(c->y, v[0], "select.metric", "metric", metric_names, &k))
            return TL_EINVAL;
        s->metric = (sweep_metric)k;
    }
    int loss = s->metric == SWEEP_VAL_LOSS || s->metric == SWEEP_LOSS;
    s->goal_max = !loss;
    *metric_node = v[0];
    if (v[1]) {
        if (ycheck_enum(c->y, v[1], "select.goal", "goal", goals, &k))
            return TL_EINVAL;
        if ((k == 0) == loss)
            return ycheck_fail(c->y, v[1], "select.goal", "expected %s for %s (%s would pick the worst trial)",
                        loss ? "min" : "max", sweep_metric_name(s->metric), goals[k]);
    }
    return 0;
}

static int parse_early_stop(ctx *c, yaml_node_t *m)
{
    static const char *const keys[] = {"monitor", "patience", "min_delta", "restore_best_weights",
                                       NULL};
    yaml_node_t *v[4];
    sweep_early_stop *es = &c->s->early_stop;
    if (ycheck_map(c->y, m, "early_stopping", keys, v,
                   "{monitor: val_loss, patience: P, min_delta: D, restore_best_weights: true}"))
        return TL_EINVAL;
    es->enabled = 1;
    es->monitor = SWEEP_VAL_LOSS;   /* Keras's default */
    int k;
    if (v[0]) {
        if (ycheck_enum(c->y, v[0], "early_stopping.monitor", "metric", metric_names, &k))
            return TL_EINVAL;
        es->monitor = (sweep_metric)k;
    }
    es->mode_max = es->monitor == SWEEP_VAL_ACCURACY || es->monitor == SWEEP_ACCURACY;
    if (v[1] && ycheck_int(c->y, v[1], "early_stopping.patience", "a whole number of epochs >= 0",
                           0, 1000000, &es->patience))
        return TL_EINVAL;
    if (v[2] && ycheck_range(c->y, v[2], "early_stopping.min_delta", "a number >= 0", 0, 0, 1e9, 0,
                             &es->min_delta))
        return TL_EINVAL;
    es->restore_best_weights = 1;
    if (v[3] && ycheck_bool(c->y, v[3], "early_stopping.restore_best_weights",
                            &es->restore_best_weights))
        return TL_EINVAL;
    /* a trial always keeps its best epoch by select: (and evaluates it) */
    if (!es->restore_best_weights)
        return ycheck_fail(c->y, v[3], "early_stopping.restore_best_weights",
                           "expected true (a trial always keeps its best epoch by select.metric)");
    return 0;
}

/* search.max_epochs is the trials' epochs under another name (Ray Tune's
 * and Hyperband's): given alone it sets epochs, given with it it must agree. */
static int parse_max_epochs(ctx *c, yaml_node_t *n, yaml_node_t *epochs_node)
{
    sweep *s = c->s;
    int max = 0;
    if (ycheck_int(c->y, n, "search.max_epochs", "a whole number >= 1", 1, 1000000, &max))
        return TL_EINVAL;
    if (epochs_node && max != s->epochs)
        return ycheck_fail(c->y, n, "search.max_epochs",
                           "expected the same as epochs (%d), or one of the two left out",
                           s->epochs);
    s->epochs = max;
    return 0;
}

static int parse_search(ctx *c, yaml_node_t *m, yaml_node_t *epochs_node, yaml_node_t **trials_node)
{
    static const char *const keys[] = {"method", "trials", "seed", "min_epochs",
                                       "reduction_factor", "max_epochs", "metric", NULL};
    static const char *const methods[] = {"grid", "random", "successive_halving", "asha", NULL};
    yaml_node_t *v[7];
    sweep *s = c->s;
    if (ycheck_map(c->y, m, "search", keys, v,
                   "{method: grid|random|successive_halving|asha, trials: N, seed: S, "
                   "min_epochs: R, reduction_factor: ETA, max_epochs: E, metric: M}"))
        return TL_EINVAL;
    int k = 0;
    if (v[0] && ycheck_enum(c->y, v[0], "search.method", "search method", methods, &k))
        return TL_EINVAL;
    s->search = (sweep_search_method)k;
    if (s->search == SWEEP_SEARCH_GRID && v[1])
        return ycheck_fail(c->y, v[1], "search.trials",
                           "only with method: random, successive_halving or asha (grid runs "
                           "every configuration)");
    if (s->search == SWEEP_SEARCH_RANDOM && !v[1])
        return ycheck_fail(c->y, m, "search.trials",
                           "missing (required with method: random: how many configurations to draw)");
    *trials_node = v[1];
    if (v[1] && ycheck_int(c->y, v[1], "search.trials", "a whole number in [1, 100000]", 1,
                           SWEEP_MAX_TRIALS, &s->search_trials))
        return TL_EINVAL;
    if (v[2] && ycheck_u64(c->y, v[2], "search.seed", &s->search_seed))
        return TL_EINVAL;
    static const char *const rung_keys[] = {"search.min_epochs", "search.reduction_factor",
                                            "search.max_epochs", "search.metric"};
    for (int i = 3; i < 7; i++)
        if (v[i] && !sweep_has_rungs(s))
            return ycheck_fail(c->y, v[i], rung_keys[i - 3],
                               "only with method: successive_halving or asha (the rungs)");
    if (v[5] && parse_max_epochs(c, v[5], epochs_node))
        return TL_EINVAL;
    if (!sweep_has_rungs(s))
        return 0;
    if (v[6]) {
        int k = 0;
        if (ycheck_enum(c->y, v[6], "search.metric", "metric", metric_names, &k))
            return TL_EINVAL;
        s->search_metric = (sweep_metric)k;
        s->search_goal_max = k == SWEEP_VAL_ACCURACY || k == SWEEP_ACCURACY;
        c->search_metric_node = v[6];
    }
    s->min_epochs = 1;
    s->reduction_factor = 3;
    if (v[3] && ycheck_int(c->y, v[3], "search.min_epochs", "a whole number >= 1", 1, 1000000,
                           &s->min_epochs))
        return TL_EINVAL;
    if (v[4] && ycheck_int(c->y, v[4], "search.reduction_factor", "a whole number in [2, 100]", 2,
                           100, &s->reduction_factor))
        return TL_EINVAL;
    if (s->epochs && s->min_epochs >= s->epochs)
        return ycheck_fail(c->y, v[3] ? v[3] : m, "search.min_epochs",
                           "expected fewer than the trials' %d epochs (the first rung stops "
                           "before the last), got %d", s->epochs, s->min_epochs);
    return 0;
}

/* ---- the file ----------------------------------------------------------- */

/* ranks_per_trial: `auto` (0) or a group size >= 1. */
static int parse_ranks_per_trial(ctx *c, yaml_node_t *n)
{
    static const char *const what = "a whole number >= 1 or auto";
    if (n->type == YAML_SCALAR_NODE && !strcmp((const char *)n->data.scalar.value, "auto")) {
        c->s->ranks_per_trial = SWEEP_RANKS_AUTO;
        return 0;
    }
    return ycheck_int(c->y, n, "ranks_per_trial", what, 1, SWEEP_MAX_RANKS_PER_TRIAL,
                      &c->s->ranks_per_trial);
}

static int parse_root(ctx *c, yaml_node_t *root)
{
    static const char *const keys[] = {"name", "data", "model", "weights", "grid",
                                       "epochs", "select", "out", "seed", "threads",
                                       "feature_cache", "checkpoint_seconds",
                                       "worker_timeout", "engine", "precision", "search",
                                       "early_stopping", "ranks_per_trial", NULL};
    yaml_node_t *v[18];
    sweep *s = c->s;
    if (ycheck_map(c->y, root, "", keys, v, "a mapping of sweep keys"))
        return TL_EINVAL;
    /* top-level scalars first: epochs bounds frozen_then_fine_tune */
    if (v[0] && ycheck_str(c->y, v[0], "name", "a name", &s->name))
        return TL_EINVAL;
    if (v[5] && ycheck_int(c->y, v[5], "epochs", "a whole number >= 1", 1, 1000000, &s->epochs))
        return TL_EINVAL;
    if (!v[7])
        return ycheck_fail(c->y, root, "out", "missing (required: the folder for journal, checkpoints and best model)");
    if (ycheck_str(c->y, v[7], "out", "a folder", &s->out))
        return TL_EINVAL;
    if (v[8] && ycheck_u64(c->y, v[8], "seed", &s->seed))
        return TL_EINVAL;
    /* search before the grid (which axes may be sampled) and before the
     * check of epochs (search.max_epochs may give them) */
    s->search_seed = s->seed;
    yaml_node_t *trials_node = NULL;
    if (v[15] && parse_search(c, v[15], v[5], &trials_node))
        return TL_EINVAL;
    if (!s->epochs)
        return ycheck_fail(c->y, root, "epochs", "missing (required: a whole number >= 1)");
    if (v[9] && ycheck_int(c->y, v[9], "threads", "a whole number >= 0 (0: automatic)", 0, 4096, &s->threads))
        return TL_EINVAL;
    if (v[17] && parse_ranks_per_trial(c, v[17]))
        return TL_EINVAL;
    int cache = 1;
    if (v[10] && ycheck_bool(c->y, v[10], "feature_cache", &cache))
        return TL_EINVAL;
    s->no_feature_cache = !cache;
    s->checkpoint_seconds = 1.0;
    if (v[11] && ycheck_range(c->y, v[11], "checkpoint_seconds", "a number of seconds >= 0", 0, 0, 1e9, 0,
                           &s->checkpoint_seconds))
        return TL_EINVAL;
    s->worker_timeout = SWEEP_WORKER_TIMEOUT_DEFAULT;
    if (v[12] && ycheck_range(c->y, v[12], "worker_timeout", "a number of seconds >= 1", 1, 0,
                              1e6, 0, &s->worker_timeout))
        return TL_EINVAL;
    int k;
    if (v[13]) {
        if (ycheck_enum(c->y, v[13], "engine", "engine", engine_names, &k))
            return TL_EINVAL;
        s->engine_set = 1;
        s->engine = (sweep_engine)k;
        if (s->engine == SWEEP_ENGINE_ONEDNN)
            mark(&s->onednn_at, v[13], "engine");
    }
    /* an axis, like the optimizer: fp32 and bf16 compared in one sweep */
    if (v[14])
        return ycheck_fail(c->y, v[14], "precision",
                           "goes under grid: (grid.precision: fp32, bf16 or [fp32, bf16])");

    yaml_node_t *size_node = NULL, *metric_node = NULL, *bb_list = NULL, **bb_nodes = NULL;
    s->image_size = 224;
    s->data_seed = s->seed;
    data_augment_cfg_default(&s->augment);
    if (!v[1])
        return ycheck_fail(c->y, root, "data.train_dir", "missing (required: a folder with one sub-folder per class)");
    if (parse_data(c, v[1], &size_node))
        return TL_EINVAL;
    if (v[2] && parse_head(c, v[2]))
        return TL_EINVAL;
    if (!s->n_head) {
        free(s->head);
        if (!(s->head = calloc(1, sizeof *s->head)))
            return TL_ENOMEM;
        s->n_head = 1;   /* GlobalAveragePooling2D */
    }
    if (v[3] && parse_weights(c, v[3]))
        return TL_EINVAL;
    const char *bb_path = "grid.backbone";
    int rc = parse_grid(c, v[4], root, &bb_list, &bb_nodes, &bb_path);
    /* a range has no grid of values: only a random search samples it */
    if (!rc && s->search == SWEEP_SEARCH_GRID && s->sampled_at.line) {
        const sweep_at *a = &s->sampled_at;
        rc = tl_errf(c->y->e, TL_EINVAL, "%s:%d:%d: %s: expected a list with search method grid "
                     "(a sampled axis needs search: {method: random, trials: N}, or successive_halving or "
                     "asha with trials: N)", c->y->file,
                     a->line, a->col, a->path);
    }
    s->goal_max = 1;   /* val_accuracy, max: without a select: */
    if (!rc && v[6])
        rc = parse_select(c, v[6], &metric_node);
    for (int i = 0; !rc && i < s->n_backbones; i++) {
        char ip[64];
        yaml_node_t *bn = bb_nodes[i];
        if (bb_list && bb_list->type == YAML_SEQUENCE_NODE)
            snprintf(ip, sizeof ip, "%s[%d]", bb_path, i);
        else
            snprintf(ip, sizeof ip, "%s", bb_path);
        if (!sweep_weights_path(s, s->backbones[i]))
            rc = ycheck_fail(c->y, bn, ip, "no weights for %s (add it under weights: with a local file; compute nodes have no internet)",
                      s->backbones[i]);
        else if (!s->n_image_sizes && s->image_size < sweep_backbone_min_size(s->backbones[i]))
            rc = ycheck_fail(c->y, size_node ? size_node : v[1], "data.image_size",
                      "expected at least %d for %s (%s), got %d", sweep_backbone_min_size(s->backbones[i]),
                      s->backbones[i], ip, s->image_size);
    }
    free(bb_nodes);
    if (rc)
        return rc;
    if (v[16] && parse_early_stop(c, v[16]))
        return TL_EINVAL;
    int es_val = s->early_stop.monitor == SWEEP_VAL_ACCURACY || s->early_stop.monitor == SWEEP_VAL_LOSS;
    if (s->early_stop.enabled && es_val && !s->val_dir && s->validation_split == 0)
        return ycheck_fail(c->y, v[16], "early_stopping.monitor",
                           "%s needs validation data: give data.val_dir or data.validation_split > 0",
                           sweep_metric_name(s->early_stop.monitor));
    int val = s->metric == SWEEP_VAL_ACCURACY || s->metric == SWEEP_VAL_LOSS;
    if (val && !s->val_dir && s->validation_split == 0)
        return ycheck_fail(c->y, metric_node ? metric_node : v[1], metric_node ? "select.metric" : "data.validation_split",
                    "%s needs validation data: give data.val_dir or data.validation_split > 0",
                    sweep_metric_name(s->metric));
    if (!c->search_metric_node) {
        s->search_metric = s->metric;
        s->search_goal_max = s->goal_max;
    }
    int search_val = s->search_metric == SWEEP_VAL_ACCURACY || s->search_metric == SWEEP_VAL_LOSS;
    if (c->search_metric_node && search_val && !s->val_dir && s->validation_split == 0)
        return ycheck_fail(c->y, c->search_metric_node, "search.metric",
                           "%s needs validation data: give data.val_dir or data.validation_split > 0",
                           sweep_metric_name(s->search_metric));
    if (!s->name) {
        const char *b = strrchr(c->y->file, '/');
        b = b ? b + 1 : c->y->file;
        size_t n = strcspn(b, ".");
        if (!(s->name = strndup(b, n ? n : strlen(b))))
            return TL_ENOMEM;
    }
    double total = sweep_grid_size(s);
    if (!sweep_draws(s) && s->sampled_at.line) {
        const sweep_at *a = &s->sampled_at;
        return tl_errf(c->y->e, TL_EINVAL, "%s:%d:%d: %s: a sampled axis needs search.trials "
                       "with method %s (how many configurations to draw)", c->y->file, a->line,
                       a->col, a->path, sweep_search_name(s->search));
    }
    if (!sweep_draws(s) && total > SWEEP_MAX_TRIALS)
        return ycheck_fail(c->y, v[4], "grid", "expected at most %d trials, the product of the lists is %.0f",
                    SWEEP_MAX_TRIALS, total);
    /* lists and whole numbers only: the draws repeat once the space is used up */
    int continuous = s->lr_dist.kind || s->wd_dist.kind || s->mom_dist.kind || s->ls_dist.kind ||
                     s->do_dist.kind;
    if (s->batch_dist.kind)
        total *= s->batch_dist.hi - s->batch_dist.lo + 1;
    if (s->du_dist.kind)
        total *= s->du_dist.hi - s->du_dist.lo + 1;
    if (sweep_draws(s) && !continuous && s->search_trials > total)
        return ycheck_fail(c->y, trials_node, "search.trials",
                           "expected at most %.0f (grid: has %.0f configurations), got %d",
                           total, total, s->search_trials);
    return sweep_expand(s, c->y->e);
}

void sweep_free(sweep *s)
{
    if (!s)
        return;
    free(s->file);
    free(s->name);
    free(s->train_dir);
    free(s->val_dir);
    free(s->test_dir);
    free(s->head);
    for (int i = 0; i < s->n_weights; i++)
        free(s->weights[i].path);
    free(s->weights);
    free(s->backbones);
    free(s->modes);
    free(s->learning_rates);
    free(s->optimizers);
    free(s->batch_sizes);
    free(s->weight_decays);
    free(s->momenta);
    free(s->scheds);
    free(s->precisions);
    free(s->label_smoothings);
    for (int i = 0; s->heads && i < s->n_heads; i++)
        free(s->heads[i].op);
    free(s->heads);
    free(s->dense_units);
    free(s->dropouts);
    free(s->augments);
    free(s->image_sizes);
    free(s->out);
    sweep_expand_free(s);
    memset(s, 0, sizeof *s);
}

int sweep_parse(sweep *s, const char *file, const char *text, size_t len, tl_err *e)
{
    memset(s, 0, sizeof *s);
    ycheck y;
    ycheck_init(&y, file, "sweep file", e);
    if (!(s->file = strdup(file)))
        return ycheck_nomem(&y);
    int rc = ycheck_load(&y, text, len);
    yaml_node_t *root = ycheck_root(&y);
    if (!rc && !root) {
        rc = tl_errf(y.e, TL_EFORMAT,
                     "%s:1:1: empty sweep file (expected a mapping with data, grid, epochs and out)", y.file);
    } else if (!rc && root->type != YAML_MAPPING_NODE) {
        rc = ycheck_fail_got(&y, root, NULL,
                             "a mapping of sweep keys (name, data, model, weights, grid, epochs, select, out)");
    } else if (!rc) {
        ctx c = {.y = &y, .s = s};
        rc = parse_root(&c, root);
    }
    if (ycheck_close(&y, rc))
        sweep_free(s);
    return rc;
}

int sweep_load_text(sweep *s, const char *path, char **text, size_t *len, tl_err *e)
{
    memset(s, 0, sizeof *s);
    *text = NULL;
    *len = 0;
    unsigned char *buf;
    size_t n;
    int rc = tl_read_file(path, SWEEP_MAX_FILE, &buf, &n, e);
    if (rc == TL_EFORMAT)
        return tl_errf(e, TL_EFORMAT, "%s: larger than %d bytes: not a sweep file", path,
                       SWEEP_MAX_FILE);
    if (rc == TL_ENOTFOUND && e)
        e->code = TL_EIO; /* as before: any open failure is an I/O error */
    if (rc)
        return rc == TL_ENOTFOUND ? TL_EIO : rc;
    if ((rc = sweep_parse(s, path, (const char *)buf, n, e))) {
        free(buf);
        return rc;
    }
    *text = (char *)buf;
    *len = n;
    return 0;
}

int sweep_load(sweep *s, const char *path, tl_err *e)
{
    char *text;
    size_t len;
    int rc = sweep_load_text(s, path, &text, &len, e);
    free(text);
    return rc;
}

/* ---- what the host must have ---------------------------------------------- */

/* CMake defines it here as on worker/nn when it found oneDNN. */
static int built_with_onednn(void)
{
#ifdef TLSWEEP_HAVE_ONEDNN
    return 1;
#else
    return 0;
#endif
}

int sweep_check_host(const sweep *s, tl_err *e)
{
    static const char *const no_onednn =
        "this tlsweep is built without oneDNN (OpenBLAS only; Debian: apt-get install "
        "libdnnl-dev, then rebuild)";
    const char *f = s->file ? s->file : "sweep";
    const sweep_at *b = &s->bf16_at, *o = &s->onednn_at;
    if (b->line && !built_with_onednn())
        return tl_errf(e, TL_EINVAL, "%s:%d:%d: %s: bf16 needs oneDNN, and %s", f, b->line,
                       b->col, b->path, no_onednn);
    if (b->line && !tl_cpu_has_avx512_bf16()) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        return tl_errf(e, TL_EINVAL, "%s:%d:%d: %s: bf16 needs a CPU with AVX512_BF16, and "
                       "this one (%s) has none: use fp32 here", f, b->line, b->col, b->path,
                       host);
    }
    if (o->line && !built_with_onednn())
        return tl_errf(e, TL_EINVAL, "%s:%d:%d: %s: onednn: %s", f, o->line, o->col, o->path,
                       no_onednn);
    return 0;
}
