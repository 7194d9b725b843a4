/* The sweep file: libyaml's document API (every node keeps its mark, so
 * every error names a line), then validation, then the grid. */
#include "common/sweep/sweep.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/base/fileio.h"

/* Limits that keep a hostile file from costing more than a moment (a
 * grid list is checked for repeats pairwise). */
enum { SWEEP_MAX_FILE = 1 << 20, SWEEP_MAX_LIST = 1000 };

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

/* ---- messages --------------------------------------------------------- */

typedef struct {
    const char *file;
    yaml_document_t *doc;
    sweep *s;
    tl_err *e;
} ctx;

/* Copies user text for a message: printable, short, on one line. */
static void show_text(const char *t, size_t len, char *buf, size_t cap)
{
    size_t j = 0, max = cap - 4;
    for (size_t i = 0; i < len && j < max; i++) {
        unsigned char ch = (unsigned char)t[i];
        buf[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (len > max)
        memcpy(buf + max - 3, "...", 3);
    buf[j] = '\0';
}

static void show_node(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, cap, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, cap, "a list");
    else if (n->data.scalar.length == 0)
        snprintf(buf, cap, "nothing");
    else
        show_text((const char *)n->data.scalar.value, n->data.scalar.length, buf, cap);
}

static int fail(ctx *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ctx *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    unsigned long line = n ? (unsigned long)n->start_mark.line + 1 : 1;
    unsigned long col = n ? (unsigned long)n->start_mark.column + 1 : 1;
    if (path && *path)
        return tl_errf(c->e, TL_EINVAL, "%s:%lu:%lu: %s: %s", c->file, line, col, path, what);
    return tl_errf(c->e, TL_EINVAL, "%s:%lu:%lu: %s", c->file, line, col, what);
}

/* "expected X, got Y" with Y shown from the node. */
static int fail_got(ctx *c, const yaml_node_t *n, const char *path, const char *expected)
{
    char got[64];
    show_node(n, got, sizeof got);
    return fail(c, n, path, "expected %s, got %s", expected, got);
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* The closest of names within edit distance 2, or NULL. */
static const char *closest(const char *word, const char *const *names)
{
    const char *best = NULL;
    size_t bd = 3;
    for (int i = 0; names[i]; i++) {
        size_t d = edit_distance(word, names[i]);
        if (d < bd) {
            bd = d;
            best = names[i];
        }
    }
    return best;
}

static void list_names(const char *const *names, char *buf, size_t cap)
{
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && j < cap; i++)
        j += (size_t)snprintf(buf + j, cap - j, "%s%s", i ? ", " : "", names[i]);
}

/* "unknown WHAT 'word' (did you mean 'x'?; expected a, b, c)" */
static int fail_unknown(ctx *c, const yaml_node_t *n, const char *path, const char *what,
                        const char *const *names)
{
    char word[64], all[256];
    show_node(n, word, sizeof word);
    list_names(names, all, sizeof all);
    const char *near = n->type == YAML_SCALAR_NODE ? closest(word, names) : NULL;
    if (near)
        return fail(c, n, path, "unknown %s '%s' (did you mean '%s'?)", what, word, near);
    return fail(c, n, path, "unknown %s '%s' (expected one of %s)", what, word, all);
}

/* ---- nodes -------------------------------------------------------------- */

static yaml_node_t *node(ctx *c, int i)
{
    return yaml_document_get_node(c->doc, i);
}

static void join(char *out, size_t n, const char *path, const char *key)
{
    snprintf(out, n, "%s%s%s", path, *path ? "." : "", key);
}

static int is_scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE;
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain scalar that YAML reads as null. */
static int is_null(const yaml_node_t *n)
{
    if (!is_scalar(n) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = sval(n);
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* Checks that m is a mapping whose keys are all in keys (NULL-terminated),
 * each at most once; vals[i] is the value of keys[i] or NULL. */
static int get_map(ctx *c, yaml_node_t *m, const char *path, const char *const *keys,
                   yaml_node_t **vals, const char *what)
{
    int nk = 0;
    while (keys[nk])
        nk++;
    for (int i = 0; i < nk; i++)
        vals[i] = NULL;
    if (m->type != YAML_MAPPING_NODE) {
        char all[256], exp[320];
        list_names(keys, all, sizeof all);
        snprintf(exp, sizeof exp, "%s (keys: %s)", what, all);
        return fail_got(c, m, path, exp);
    }
    yaml_node_pair_t *kv = m->data.mapping.pairs.start;
    for (; kv < m->data.mapping.pairs.top; kv++) {
        yaml_node_t *k = node(c, kv->key), *v = node(c, kv->value);
        if (!k || !v)
            return fail(c, m, path, "malformed mapping");
        if (!is_scalar(k) || k->data.scalar.length == 0)
            return fail_got(c, k, path, "a key name");
        int i = 0;
        while (i < nk && strcmp(keys[i], sval(k)) != 0)
            i++;
        char kp[256];
        char word[64];
        show_node(k, word, sizeof word);
        join(kp, sizeof kp, path, word);
        if (i == nk) {
            const char *near = closest(word, keys);
            char all[256];
            list_names(keys, all, sizeof all);
            if (near)
                return fail(c, k, kp, "unknown key (did you mean '%s'?)", near);
            return fail(c, k, kp, "unknown key (expected one of %s)", all);
        }
        if (vals[i]) {
            /* the first occurrence's key node: the pair before with that key */
            unsigned long first = 0;
            for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < kv; p++) {
                yaml_node_t *pk = node(c, p->key);
                if (pk && is_scalar(pk) && strcmp(sval(pk), keys[i]) == 0) {
                    first = (unsigned long)pk->start_mark.line + 1;
                    break;
                }
            }
            return fail(c, k, kp, "duplicate key (first given on line %lu)", first);
        }
        vals[i] = v;
    }
    return 0;
}

static int get_str(ctx *c, yaml_node_t *n, const char *path, const char *expected, char **out)
{
    if (!is_scalar(n) || is_null(n) || n->data.scalar.length == 0)
        return fail_got(c, n, path, expected);
    const char *v = sval(n);
    for (size_t i = 0; i < n->data.scalar.length; i++)
        if ((unsigned char)v[i] < 0x20)
            return fail(c, n, path, "expected %s without control characters", expected);
    free(*out);
    *out = strdup(v);
    if (!*out)
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    return 0;
}

static int get_num(ctx *c, yaml_node_t *n, const char *path, const char *expected, double *out)
{
    if (!is_scalar(n) || n->data.scalar.length == 0 || n->data.scalar.length > 64)
        return fail_got(c, n, path, expected);
    const char *v = sval(n);
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno == ERANGE || !isfinite(d) || isspace((unsigned char)*v))
        return fail_got(c, n, path, expected);
    *out = d;
    return 0;
}

/* A number in [lo, hi] (lo_open / hi_open make that end open). */
static int get_range(ctx *c, yaml_node_t *n, const char *path, const char *expected, double lo,
                     int lo_open, double hi, int hi_open, double *out)
{
    double d = 0;
    if (get_num(c, n, path, expected, &d))
        return TL_EINVAL;
    if ((lo_open ? !(d > lo) : !(d >= lo)) || (hi_open ? !(d < hi) : !(d <= hi)))
        return fail_got(c, n, path, expected);
    *out = d;
    return 0;
}

static int get_int(ctx *c, yaml_node_t *n, const char *path, const char *expected, long lo,
                   long hi, int *out)
{
    if (!is_scalar(n) || n->data.scalar.length == 0 || n->data.scalar.length > 32)
        return fail_got(c, n, path, expected);
    const char *v = sval(n);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0' || errno == ERANGE || isspace((unsigned char)*v) || x < lo || x > hi)
        return fail_got(c, n, path, expected);
    *out = (int)x;
    return 0;
}

static int get_u64(ctx *c, yaml_node_t *n, const char *path, uint64_t *out)
{
    const char *expected = "a whole number >= 0";
    if (!is_scalar(n) || n->data.scalar.length == 0 || n->data.scalar.length > 32)
        return fail_got(c, n, path, expected);
    const char *v = sval(n);
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*v))
        return fail_got(c, n, path, expected);
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return fail_got(c, n, path, expected);
    *out = (uint64_t)x;
    return 0;
}

static int get_bool(ctx *c, yaml_node_t *n, const char *path, int *out)
{
    static const char *const t[] = {"true", "True", "TRUE", NULL}, *const f[] = {"false", "False", "FALSE", NULL};
    if (is_scalar(n)) {
        for (int i = 0; t[i]; i++)
            if (!strcmp(sval(n), t[i]))
                return *out = 1, 0;
        for (int i = 0; f[i]; i++)
            if (!strcmp(sval(n), f[i]))
                return *out = 0, 0;
    }
    return fail_got(c, n, path, "true or false");
}

/* One of names (NULL-terminated); *out is its index. */
static int get_enum(ctx *c, yaml_node_t *n, const char *path, const char *what,
                    const char *const *names, int *out)
{
    if (is_scalar(n))
        for (int i = 0; names[i]; i++)
            if (!strcmp(sval(n), names[i]))
                return *out = i, 0;
    return fail_unknown(c, n, path, what, names);
}

/* A grid value: a list, or one value standing for a one-element list.
 * Fills items (node pointers) and paths ("grid.x[i]" or "grid.x"). */
typedef struct {
    yaml_node_t **items;
    int n;
    int is_list;
} vlist;

static int get_list(ctx *c, yaml_node_t *n, const char *path, vlist *l)
{
    l->items = NULL;
    l->n = 0;
    l->is_list = n->type == YAML_SEQUENCE_NODE;
    if (!l->is_list) {
        if (is_null(n))
            return fail_got(c, n, path, "a value or a non-empty list");
        l->items = malloc(sizeof *l->items);
        if (!l->items)
            return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
        l->items[0] = n;
        l->n = 1;
        return 0;
    }
    ptrdiff_t cnt = n->data.sequence.items.top - n->data.sequence.items.start;
    if (cnt == 0)
        return fail(c, n, path, "expected a non-empty list");
    if (cnt > SWEEP_MAX_LIST)
        return fail(c, n, path, "expected at most %d values, got %ld", SWEEP_MAX_LIST, (long)cnt);
    l->items = calloc((size_t)cnt, sizeof *l->items);
    if (!l->items)
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    for (ptrdiff_t i = 0; i < cnt; i++) {
        l->items[i] = node(c, n->data.sequence.items.start[i]);
        if (!l->items[i])
            return fail(c, n, path, "malformed list");
    }
    l->n = (int)cnt;
    return 0;
}

static void item_path(char *out, size_t n, const char *path, const vlist *l, int i)
{
    if (l->is_list)
        snprintf(out, n, "%s[%d]", path, i);
    else
        snprintf(out, n, "%s", path);
}

/* ---- sections ----------------------------------------------------------- */

static int parse_augment(ctx *c, yaml_node_t *m, const char *path)
{
    static const char *const keys[] = {"horizontal_flip", "rotation_range", "width_shift_range",
                                       "height_shift_range", "zoom_range", "brightness_range",
                                       "contrast", NULL};
    yaml_node_t *v[7];
    data_augment_cfg *a = &c->s->augment;
    char kp[256];
    double d;
    if (get_map(c, m, path, keys, v, "a mapping"))
        return TL_EINVAL;
    if (v[0]) {
        join(kp, sizeof kp, path, keys[0]);
        if (get_bool(c, v[0], kp, &a->horizontal_flip))
            return TL_EINVAL;
    }
    if (v[1]) {
        join(kp, sizeof kp, path, keys[1]);
        if (get_range(c, v[1], kp, "degrees in [0, 180]", 0, 0, 180, 0, &d))
            return TL_EINVAL;
        a->rotation_range = (float)d;
    }
    for (int k = 2; k <= 3; k++)
        if (v[k]) {
            join(kp, sizeof kp, path, keys[k]);
            if (get_range(c, v[k], kp, "a fraction in [0, 1)", 0, 0, 1, 1, &d))
                return TL_EINVAL;
            *(k == 2 ? &a->width_shift_range : &a->height_shift_range) = (float)d;
        }
    /* zoom_range: z (Keras: [1-z, 1+z]) or [lo, hi]; brightness_range: [lo, hi] */
    for (int k = 4; k <= 5; k++) {
        if (!v[k])
            continue;
        join(kp, sizeof kp, path, keys[k]);
        float *r = k == 4 ? a->zoom_range : a->brightness_range;
        if (k == 4 && is_scalar(v[k])) {
            if (get_range(c, v[k], kp, "a number in [0, 1) or a list [lo, hi]", 0, 0, 1, 1, &d))
                return TL_EINVAL;
            r[0] = (float)(1 - d);
            r[1] = (float)(1 + d);
            continue;
        }
        const char *exp = k == 4 ? "a number in [0, 1) or a list [lo, hi] with 0 < lo <= hi"
                                 : "a list [lo, hi] with 0 < lo <= hi";
        if (v[k]->type != YAML_SEQUENCE_NODE ||
            v[k]->data.sequence.items.top - v[k]->data.sequence.items.start != 2)
            return fail_got(c, v[k], kp, exp);
        double lh[2];
        for (int i = 0; i < 2; i++) {
            yaml_node_t *it = node(c, v[k]->data.sequence.items.start[i]);
            char ip[280];
            snprintf(ip, sizeof ip, "%s[%d]", kp, i);
            if (!it || get_range(c, it, ip, "a number > 0", 0, 1, 100, 0, &lh[i]))
                return it ? TL_EINVAL : fail(c, v[k], kp, "malformed list");
        }
        if (lh[0] > lh[1])
            return fail(c, v[k], kp, "expected [lo, hi] with lo <= hi");
        r[0] = (float)lh[0];
        r[1] = (float)lh[1];
    }
    if (v[6]) {
        join(kp, sizeof kp, path, keys[6]);
        if (get_range(c, v[6], kp, "a factor in [0, 1)", 0, 0, 1, 1, &d))
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
    if (get_map(c, m, "data", keys, v, "a mapping"))
        return TL_EINVAL;
    if (!v[0])
        return fail(c, m, "data.train_dir", "missing (required: a folder with one sub-folder per class)");
    if (get_str(c, v[0], "data.train_dir", "a folder", &s->train_dir) ||
        (v[1] && get_str(c, v[1], "data.val_dir", "a folder", &s->val_dir)) ||
        (v[2] && get_str(c, v[2], "data.test_dir", "a folder", &s->test_dir)))
        return TL_EINVAL;
    if (v[3] && get_range(c, v[3], "data.validation_split", "a fraction in [0, 1)", 0, 0, 1, 1,
                          &s->validation_split))
        return TL_EINVAL;
    if (v[1] && s->validation_split > 0)
        return fail(c, v[3], "data.validation_split", "give val_dir or validation_split, not both");
    if (v[4] && get_int(c, v[4], "data.image_size", "a whole number of pixels >= 32", 32, 4096,
                        &s->image_size))
        return TL_EINVAL;
    *image_size_node = v[4];
    if (v[5] && get_u64(c, v[5], "data.seed", &s->data_seed))
        return TL_EINVAL;
    if (v[6] && parse_augment(c, v[6], "data.augment"))
        return TL_EINVAL;
    return 0;
}

static int parse_head(ctx *c, yaml_node_t *m)
{
    static const char *const mkeys[] = {"head", NULL};
    static const char *const ops[] = {"global_average_pooling", "flatten", NULL};
    static const char *const okeys[] = {"dense", "activation", "dropout", NULL};
    static const char *const expected =
        "global_average_pooling, flatten, {dense: N, activation: relu|relu6|linear} or {dropout: RATE}";
    yaml_node_t *v[1];
    sweep *s = c->s;
    if (get_map(c, m, "model", mkeys, v, "a mapping"))
        return TL_EINVAL;
    if (!v[0])
        return 0;
    vlist l;
    int rc = get_list(c, v[0], "model.head", &l);
    if (rc)
        return rc;
    s->head = calloc((size_t)l.n, sizeof *s->head);
    if (!s->head) {
        free(l.items);
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    }
    for (int i = 0; i < l.n && !rc; i++) {
        char ip[64];
        item_path(ip, sizeof ip, "model.head", &l, i);
        yaml_node_t *it = l.items[i];
        sweep_head_op *op = &s->head[i];
        if (is_scalar(it)) {
            int k;
            if ((rc = get_enum(c, it, ip, "head layer", ops, &k)))
                break;
            op->kind = k == 0 ? SWEEP_HEAD_GAP : SWEEP_HEAD_FLATTEN;
            s->n_head++;
            continue;
        }
        if (it->type != YAML_MAPPING_NODE) {
            rc = fail_got(c, it, ip, expected);
            break;
        }
        yaml_node_t *o[3];
        if ((rc = get_map(c, it, ip, okeys, o, expected)))
            break;
        char kp[96];
        if (o[0] && o[2]) {
            join(kp, sizeof kp, ip, "dropout");
            rc = fail(c, o[2], kp, "a layer is dense or dropout, not both");
        } else if (o[0]) {
            op->kind = SWEEP_HEAD_DENSE;
            op->act = SWEEP_ACT_LINEAR;
            join(kp, sizeof kp, ip, "dense");
            rc = get_int(c, o[0], kp, "units: a whole number in [1, 1048576]", 1, 1 << 20, &op->units);
            if (!rc && o[1]) {
                int a;
                join(kp, sizeof kp, ip, "activation");
                rc = get_enum(c, o[1], kp, "activation", act_names, &a);
                op->act = (sweep_act)a;
            }
        } else if (o[2]) {
            double r;
            op->kind = SWEEP_HEAD_DROPOUT;
            join(kp, sizeof kp, ip, "dropout");
            if (o[1]) {
                join(kp, sizeof kp, ip, "activation");
                rc = fail(c, o[1], kp, "dropout takes no activation");
            } else if (!(rc = get_range(c, o[2], kp, "a rate in [0, 1)", 0, 0, 1, 1, &r))) {
                op->rate = (float)r;
            }
        } else {
            rc = fail_got(c, it, ip, expected);
        }
        if (!rc)
            s->n_head++;
    }
    free(l.items);
    return rc;
}

static int parse_weights(ctx *c, yaml_node_t *m)
{
    sweep *s = c->s;
    if (m->type != YAML_MAPPING_NODE)
        return fail_got(c, m, "weights", "a mapping of backbone: path");
    ptrdiff_t cnt = m->data.mapping.pairs.top - m->data.mapping.pairs.start;
    s->weights = calloc((size_t)cnt + 1, sizeof *s->weights);
    if (!s->weights)
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    yaml_node_t *seen[N_BACKBONES] = {0};
    for (ptrdiff_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *kv = &m->data.mapping.pairs.start[i];
        yaml_node_t *k = node(c, kv->key), *v = node(c, kv->value);
        if (!k || !v)
            return fail(c, m, "weights", "malformed mapping");
        char kp[96], word[64];
        if (!is_scalar(k))
            return fail_got(c, k, "weights", "a backbone name");
        show_node(k, word, sizeof word);
        join(kp, sizeof kp, "weights", word);
        int b = backbone_find(sval(k));
        if (b < 0)
            return fail_unknown(c, k, kp, "backbone", backbone_names);
        if (seen[b])
            return fail(c, k, kp, "duplicate key (first given on line %lu)",
                        (unsigned long)seen[b]->start_mark.line + 1);
        seen[b] = k;
        sweep_weights *w = &s->weights[s->n_weights];
        w->backbone = backbone_table[b].name;
        if (get_str(c, v, kp, "a path to a local weights file", &w->path))
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
    if (is_scalar(it)) {
        int k;
        if (get_enum(c, it, ip, "mode", names, &k))
            return TL_EINVAL;
        md->kind = k == 0 ? SWEEP_FROZEN : SWEEP_FINE_TUNE;
        return 0;
    }
    if (it->type != YAML_MAPPING_NODE)
        return fail_got(c, it, ip, expected);
    yaml_node_t *v[2];
    char kp[128], kp2[160];
    if (get_map(c, it, ip, mkeys, v, expected))
        return TL_EINVAL;
    if ((v[0] && v[1]) || (!v[0] && !v[1]))
        return fail_got(c, it, ip, expected);
    if (v[0]) {
        md->kind = SWEEP_FINE_TUNE_AT;
        join(kp, sizeof kp, ip, "fine_tune_at");
        return get_int(c, v[0], kp, "a layer index >= 0", 0, 1000000, &md->fine_tune_at);
    }
    md->kind = SWEEP_FROZEN_THEN_FINE_TUNE;
    join(kp, sizeof kp, ip, "frozen_then_fine_tune");
    yaml_node_t *f[2];
    if (get_map(c, v[1], kp, fkeys, f, "{fine_tune_at: N, epochs: E}"))
        return TL_EINVAL;
    if (!f[0] || !f[1]) {
        join(kp2, sizeof kp2, kp, f[0] ? "epochs" : "fine_tune_at");
        return fail(c, v[1], kp2, "missing (expected {fine_tune_at: N, epochs: E})");
    }
    join(kp2, sizeof kp2, kp, "fine_tune_at");
    if (get_int(c, f[0], kp2, "a layer index >= 0", 0, 1000000, &md->fine_tune_at))
        return TL_EINVAL;
    join(kp2, sizeof kp2, kp, "epochs");
    if (get_int(c, f[1], kp2, "a whole number >= 1", 1, 1000000, &md->frozen_epochs))
        return TL_EINVAL;
    if (md->frozen_epochs >= c->s->epochs)
        return fail(c, f[1], kp2, "expected fewer frozen epochs than epochs (%d): the fine-tune stage runs the rest",
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
    if (is_scalar(it)) {
        int k;
        if (get_enum(c, it, ip, "schedule", names, &k))
            return TL_EINVAL;
        sc->kind = k == 0 ? SWEEP_SCHED_CONSTANT : SWEEP_SCHED_COSINE;
        return 0;
    }
    yaml_node_t *v[1], *f[2];
    char kp[128], kp2[160];
    if (get_map(c, it, ip, mkeys, v, expected))
        return TL_EINVAL;
    if (!v[0])
        return fail_got(c, it, ip, expected);
    join(kp, sizeof kp, ip, "step");
    if (get_map(c, v[0], kp, skeys, f, "{every: EPOCHS, factor: F}"))
        return TL_EINVAL;
    if (!f[0] || !f[1]) {
        join(kp2, sizeof kp2, kp, f[0] ? "factor" : "every");
        return fail(c, v[0], kp2, "missing (expected {every: EPOCHS, factor: F})");
    }
    sc->kind = SWEEP_SCHED_STEP;
    join(kp2, sizeof kp2, kp, "every");
    if (get_int(c, f[0], kp2, "a whole number of epochs >= 1", 1, 1000000, &sc->every_epochs))
        return TL_EINVAL;
    join(kp2, sizeof kp2, kp, "factor");
    return get_range(c, f[1], kp2, "a factor in (0, 1]", 0, 1, 1, 0, &sc->factor);
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
    vlist l;
    int rc = get_list(c, n, path, &l);
    if (rc) {
        free(l.items);
        return rc;
    }
    char *a = calloc((size_t)l.n, elem);
    if (!a) {
        free(l.items);
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    }
    *arr = a;
    for (int i = 0; i < l.n && !rc; i++) {
        char ip[96];
        item_path(ip, sizeof ip, path, &l, i);
        if ((rc = fn(c, l.items[i], ip, a + (size_t)i * elem)))
            break;
        *count = i + 1;
        for (int j = 0; j < i; j++)
            if (same(a + (size_t)j * elem, a + (size_t)i * elem)) {
                char jp[96];
                item_path(jp, sizeof jp, path, &l, j);
                rc = fail(c, l.items[i], ip, "duplicate value (same as %s)", jp);
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
    if (get_enum(c, it, ip, "backbone", backbone_names, &k))
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
    return get_range(c, it, ip, "a number > 0", 0, 1, 1e3, 0, out);
}
static int it_opt(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    int k;
    if (get_enum(c, it, ip, "optimizer", optimizer_names, &k))
        return TL_EINVAL;
    *(sweep_optimizer *)out = (sweep_optimizer)k;
    return 0;
}
static int it_batch(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return get_int(c, it, ip, "a whole number >= 1", 1, 1 << 20, out);
}
static int it_wd(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return get_range(c, it, ip, "a number >= 0", 0, 0, 1e3, 0, out);
}
static int it_mom(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return get_range(c, it, ip, "a number in [0, 1)", 0, 0, 1, 1, out);
}
static int it_sched(ctx *c, yaml_node_t *it, const char *ip, void *out)
{
    return parse_sched(c, it, ip, out);
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

/* bb_list: grid.backbone's node; bb_nodes: its items (for later messages). */
static int parse_grid(ctx *c, yaml_node_t *m, yaml_node_t *root, yaml_node_t **bb_list,
                      yaml_node_t ***bb_nodes)
{
    static const char *const keys[] = {"backbone", "mode", "learning_rate", "optimizer",
                                       "batch_size", "weight_decay", "momentum", "schedule", NULL};
    yaml_node_t *v[8];
    sweep *s = c->s;
    if (!m)
        return fail(c, root, "grid.backbone", "missing (required: the backbones to sweep)");
    if (get_map(c, m, "grid", keys, v, "a mapping"))
        return TL_EINVAL;
    if (!v[0])
        return fail(c, m, "grid.backbone", "missing (required: the backbones to sweep)");
    *bb_list = v[0];
    int rc = parse_list(c, v[0], "grid.backbone", sizeof(char *), it_backbone, same_str,
                        (void **)&s->backbones, &s->n_backbones, bb_nodes);
    if (!rc && v[1])
        rc = parse_list(c, v[1], "grid.mode", sizeof(sweep_mode), it_mode, same_mode_v,
                        (void **)&s->modes, &s->n_modes, NULL);
    if (!rc && v[2])
        rc = parse_list(c, v[2], "grid.learning_rate", sizeof(double), it_lr, same_double,
                        (void **)&s->learning_rates, &s->n_learning_rates, NULL);
    if (!rc && v[3])
        rc = parse_list(c, v[3], "grid.optimizer", sizeof(sweep_optimizer), it_opt, same_int,
                        (void **)&s->optimizers, &s->n_optimizers, NULL);
    if (!rc && v[4])
        rc = parse_list(c, v[4], "grid.batch_size", sizeof(int), it_batch, same_int,
                        (void **)&s->batch_sizes, &s->n_batch_sizes, NULL);
    if (!rc && v[5])
        rc = parse_list(c, v[5], "grid.weight_decay", sizeof(double), it_wd, same_double,
                        (void **)&s->weight_decays, &s->n_weight_decays, NULL);
    if (!rc && v[6])
        rc = parse_list(c, v[6], "grid.momentum", sizeof(double), it_mom, same_double,
                        (void **)&s->momenta, &s->n_momenta, NULL);
    if (!rc && v[7])
        rc = parse_list(c, v[7], "grid.schedule", sizeof(sweep_sched), it_sched, same_sched_v,
                        (void **)&s->scheds, &s->n_scheds, NULL);
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
    if (get_map(c, m, "select", keys, v, "{metric: val_accuracy|val_loss|accuracy|loss, goal: max|min}"))
        return TL_EINVAL;
    int k;
    if (v[0]) {
        if (get_enum(c, v[0], "select.metric", "metric", metric_names, &k))
            return TL_EINVAL;
        s->metric = (sweep_metric)k;
    }
    int loss = s->metric == SWEEP_VAL_LOSS || s->metric == SWEEP_LOSS;
    s->goal_max = !loss;
    *metric_node = v[0];
    if (v[1]) {
        if (get_enum(c, v[1], "select.goal", "goal", goals, &k))
            return TL_EINVAL;
        if ((k == 0) == loss)
            return fail(c, v[1], "select.goal", "expected %s for %s (%s would pick the worst trial)",
                        loss ? "min" : "max", sweep_metric_name(s->metric), goals[k]);
    }
    return 0;
}

/* ---- the file ----------------------------------------------------------- */

static int parse_root(ctx *c, yaml_node_t *root)
{
    static const char *const keys[] = {"name", "data", "model", "weights", "grid",
                                       "epochs", "select", "out", "seed", "threads",
                                       "feature_cache", "checkpoint_seconds", NULL};
    yaml_node_t *v[12];
    sweep *s = c->s;
    if (get_map(c, root, "", keys, v, "a mapping of sweep keys"))
        return TL_EINVAL;
    /* top-level scalars first: epochs bounds frozen_then_fine_tune */
    if (v[0] && get_str(c, v[0], "name", "a name", &s->name))
        return TL_EINVAL;
    if (!v[5])
        return fail(c, root, "epochs", "missing (required: a whole number >= 1)");
    if (get_int(c, v[5], "epochs", "a whole number >= 1", 1, 1000000, &s->epochs))
        return TL_EINVAL;
    if (!v[7])
        return fail(c, root, "out", "missing (required: the folder for journal, checkpoints and best model)");
    if (get_str(c, v[7], "out", "a folder", &s->out))
        return TL_EINVAL;
    if (v[8] && get_u64(c, v[8], "seed", &s->seed))
        return TL_EINVAL;
    if (v[9] && get_int(c, v[9], "threads", "a whole number >= 0 (0: automatic)", 0, 4096, &s->threads))
        return TL_EINVAL;
    int cache = 1;
    if (v[10] && get_bool(c, v[10], "feature_cache", &cache))
        return TL_EINVAL;
    s->no_feature_cache = !cache;
    s->checkpoint_seconds = 1.0;
    if (v[11] && get_range(c, v[11], "checkpoint_seconds", "a number of seconds >= 0", 0, 0, 1e9, 0,
                           &s->checkpoint_seconds))
        return TL_EINVAL;

    yaml_node_t *size_node = NULL, *metric_node = NULL, *bb_list = NULL, **bb_nodes = NULL;
    s->image_size = 224;
    s->data_seed = s->seed;
    data_augment_cfg_default(&s->augment);
    if (!v[1])
        return fail(c, root, "data.train_dir", "missing (required: a folder with one sub-folder per class)");
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
    int rc = parse_grid(c, v[4], root, &bb_list, &bb_nodes);
    s->goal_max = 1;   /* val_accuracy, max: without a select: */
    if (!rc && v[6])
        rc = parse_select(c, v[6], &metric_node);
    for (int i = 0; !rc && i < s->n_backbones; i++) {
        char ip[64];
        yaml_node_t *bn = bb_nodes[i];
        if (bb_list && bb_list->type == YAML_SEQUENCE_NODE)
            snprintf(ip, sizeof ip, "grid.backbone[%d]", i);
        else
            snprintf(ip, sizeof ip, "grid.backbone");
        if (!sweep_weights_path(s, s->backbones[i]))
            rc = fail(c, bn, ip, "no weights for %s (add it under weights: with a local file; compute nodes have no internet)",
                      s->backbones[i]);
        else if (s->image_size < sweep_backbone_min_size(s->backbones[i]))
            rc = fail(c, size_node ? size_node : v[1], "data.image_size",
                      "expected at least %d for %s (%s), got %d", sweep_backbone_min_size(s->backbones[i]),
                      s->backbones[i], ip, s->image_size);
    }
    free(bb_nodes);
    if (rc)
        return rc;
    int val = s->metric == SWEEP_VAL_ACCURACY || s->metric == SWEEP_VAL_LOSS;
    if (val && !s->val_dir && s->validation_split == 0)
        return fail(c, metric_node ? metric_node : v[1], metric_node ? "select.metric" : "data.validation_split",
                    "%s needs validation data: give data.val_dir or data.validation_split > 0",
                    sweep_metric_name(s->metric));
    if (!s->name) {
        const char *b = strrchr(c->file, '/');
        b = b ? b + 1 : c->file;
        size_t n = strcspn(b, ".");
        if (!(s->name = strndup(b, n ? n : strlen(b))))
            return TL_ENOMEM;
    }
    double total = (double)s->n_backbones * s->n_modes * s->n_learning_rates * s->n_optimizers *
                   s->n_batch_sizes * (s->n_weight_decays ? s->n_weight_decays : 1) *
                   (s->n_momenta ? s->n_momenta : 1) * (s->n_scheds ? s->n_scheds : 1);
    if (total > SWEEP_MAX_TRIALS)
        return fail(c, v[4], "grid", "expected at most %d trials, the product of the lists is %.0f",
                    SWEEP_MAX_TRIALS, total);
    return sweep_expand(s, c->e);
}

static void yaml_problem(const char *file, const char *text, size_t len, yaml_parser_t *p, tl_err *e)
{
    if (p->error == YAML_MEMORY_ERROR) {
        tl_errf(e, TL_ENOMEM, "%s: out of memory reading YAML", file);
        return;
    }
    unsigned long line, col;
    if (p->error == YAML_READER_ERROR) {
        /* the reader reports a byte offset, not a mark */
        line = 1;
        col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
            if (text[i] == '\n') {
                line++;
                col = 0;
            }
    } else {
        line = (unsigned long)p->problem_mark.line + 1;
        col = (unsigned long)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->context)
        tl_errf(e, TL_EFORMAT, "%s:%lu:%lu: YAML syntax error: %s %s started on line %lu", file, line, col, problem,
                p->context, (unsigned long)p->context_mark.line + 1);
    else
        tl_errf(e, TL_EFORMAT, "%s:%lu:%lu: YAML syntax error: %s", file, line, col, problem);
}

/* libyaml takes time quadratic in the nesting depth of what it loads (a
 * megabyte of '[' runs for minutes); no sweep file nests deeper than a few
 * levels, so a first pass over the events stops at SWEEP_MAX_DEPTH. Syntax
 * errors are left to the loader, which reports them the same way. */
enum { SWEEP_MAX_DEPTH = 32 };
static int check_depth(const char *file, const char *text, size_t len, tl_err *e)
{
    yaml_parser_t p;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&p))
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", file);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    while (yaml_parser_parse(&p, &ev)) {
        yaml_event_type_t t = ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > SWEEP_MAX_DEPTH)
                rc = tl_errf(e, TL_EFORMAT, "%s:%lu:%lu: nested deeper than %d levels: not a sweep file",
                             file, (unsigned long)ev.start_mark.line + 1,
                             (unsigned long)ev.start_mark.column + 1, SWEEP_MAX_DEPTH);
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
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
    free(s->out);
    free(s->trials);
    free(s->cache_groups);
    memset(s, 0, sizeof *s);
}

/* The message is one line whatever the input held. */
static void one_line(tl_err *e)
{
    if (!e)
        return;
    for (char *p = e->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
}

int sweep_parse(sweep *s, const char *file, const char *text, size_t len, tl_err *e)
{
    memset(s, 0, sizeof *s);
    if (e)
        e->msg[0] = '\0';
    char shown[256];
    show_text(file, strlen(file), shown, sizeof shown);
    if (!(s->file = strdup(file)))
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", shown);
    yaml_parser_t p;
    yaml_document_t doc, extra;
    int deep = check_depth(shown, text, len, e);
    if (deep) {
        sweep_free(s);
        one_line(e);
        return deep;
    }
    if (!yaml_parser_initialize(&p)) {
        sweep_free(s);
        return tl_errf(e, TL_ENOMEM, "%s: out of memory", shown);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        yaml_problem(shown, text, len, &p, e);
        yaml_parser_delete(&p);
        sweep_free(s);
        one_line(e);
        return e ? e->code : TL_EFORMAT;
    }
    ctx c = {.file = shown, .doc = &doc, .s = s, .e = e};
    tl_err dummy;
    if (!c.e)
        c.e = &dummy;
    int rc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = tl_errf(c.e, TL_EFORMAT,
                     "%s:1:1: empty sweep file (expected a mapping with data, grid, epochs and out)", shown);
    } else if (!yaml_parser_load(&p, &extra)) {
        yaml_problem(shown, text, len, &p, c.e);
        rc = c.e->code;
    } else {
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        if (r2)
            rc = fail(&c, r2, NULL, "expected one YAML document, found a second one");
        else if (root->type != YAML_MAPPING_NODE)
            rc = fail_got(&c, root, NULL, "a mapping of sweep keys (name, data, model, weights, grid, epochs, select, out)");
        else
            rc = parse_root(&c, root);
        yaml_document_delete(&extra);
    }
    if (rc == TL_ENOMEM && c.e->msg[0] == '\0')
        tl_errf(c.e, TL_ENOMEM, "%s: out of memory", shown);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    if (rc) {
        sweep_free(s);
        one_line(c.e);
    }
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
