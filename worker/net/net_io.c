/* Nets from model specs; parameters to and from named tensor sets. */
#include "worker/net/net_io.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/net/backbones.h"

/* ---- building ----------------------------------------------------------------- */

int net_build_from_spec(net *n, const model_spec *s, int max_batch, tl_err *e)
{
    const char *bb = s->backbone ? s->backbone : "";
    int min = net_backbone_min_size(bb);
    if (min < 0)
        return tl_errf(e, TL_EINVAL,
                       "model: unknown backbone '%s' (expected mobilenet_v2, resnet50, vgg16 "
                       "or inception_v3)", bb);
    if (s->height < min || s->width < min)
        return tl_errf(e, TL_EINVAL, "model: %s needs an input of at least %dx%d, got %dx%d", bb,
                       min, min, s->height, s->width);
    if (s->n_head > MODEL_MAX_HEAD_OPS || (s->n_head && s->num_classes < 1))
        return tl_errf(e, TL_EINVAL, "model: head layers need a classifier (num_classes > 0)");
    net_init(n, s->height, s->width, 3, s->convention == MODEL_TORCHVISION ? NET_TORCHVISION
                                                                           : NET_KERAS);
    net_backbone_cfg cfg = {.alpha = s->alpha};
    int f = net_backbone(n, bb, &cfg, e);
    int rc = f < 0 ? f : 0;
    if (!rc && s->num_classes > 0) {
        net_head_op ops[MODEL_MAX_HEAD_OPS];
        rc = net_head_ops_from_model(ops, s->head, s->n_head, e);
        if (!rc) {
            int last = net_head(n, f, ops, s->n_head, s->num_classes, e);
            rc = last < 0 ? last : 0;
        }
    }
    if (!rc) {
        switch (s->mode) {
        case MODEL_FROZEN: net_set_trainable_from(n, f + 1); break;
        case MODEL_FINE_TUNE_AT: net_set_trainable_from_keras(n, s->fine_tune_at); break;
        case MODEL_FINE_TUNE: break; /* layers are trainable when added */
        }
        if (s->bn_update)
            net_set_bn_update(n, 1);
        rc = net_finalize(n, max_batch, 1, e);
    }
    if (rc)
        net_free(n);
    return rc;
}

int net_head_ops_from_model(net_head_op *out, const model_head_op *in, int n, tl_err *e)
{
    static const net_head_kind kinds[] = {NET_HEAD_GAP, NET_HEAD_FLATTEN, NET_HEAD_DENSE,
                                          NET_HEAD_DROPOUT};
    static const net_act acts[] = {NET_ACT_NONE, NET_ACT_RELU, NET_ACT_RELU6};
    for (int i = 0; i < n; i++) {
        const model_head_op *h = &in[i];
        if ((unsigned)h->kind > MODEL_HEAD_DROPOUT || (unsigned)h->act > MODEL_ACT_RELU6)
            return tl_errf(e, TL_EINVAL, "model: head layer %d is malformed", i);
        out[i] = (net_head_op){kinds[h->kind], h->units, acts[h->act], h->rate};
    }
    return 0;
}

model_preproc net_default_preproc(const char *backbone, model_convention cv)
{
    if (cv == MODEL_TORCHVISION)
        return MODEL_PREPROC_TORCH;
    if (backbone && (!strcmp(backbone, "resnet50") || !strcmp(backbone, "vgg16")))
        return MODEL_PREPROC_CAFFE;
    return MODEL_PREPROC_TF;
}

/* ---- saving ------------------------------------------------------------------- */

static int is_head_param(const net *n, const net_param *p)
{
    return n->features >= 0 && p->layer > n->features;
}

int net_to_tset(net *n, tset *out, int include_head, tl_err *e)
{
    if (!n->finalized)
        return tl_errf(e, TL_EINVAL, "network: not finalized, no weights to save");
    for (int i = 0; i < n->n_params; i++) {
        const net_param *p = &n->params[i];
        if (!include_head && is_head_param(n, p))
            continue;
        int64_t shape[4];
        for (int k = 0; k < p->ndim; k++)
            shape[k] = p->shape[k];
        int rc = tset_add(out, p->name, p->ndim, shape, n->weights + p->off, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------ */

const char *net_load_summary_str(const net_load_summary *s, char *buf, size_t n)
{
    snprintf(buf, n, "%d parameters loaded (%d by position), %d head tensors dropped, %d unused, "
             "%d missing", s->matched, s->by_order, s->dropped, s->unused, s->missing);
    return buf;
}

/* name minus a trailing ":<digits>", malloc'd. */
static char *strip_colon(const char *name)
{
    char *s = strdup(name);
    if (!s)
        return NULL;
    char *c = strrchr(s, ':');
    if (c && c[1]) {
        char *d = c + 1;
        while (isdigit((unsigned char)*d))
            d++;
        if (!*d)
            *c = 0;
    }
    return s;
}

/* The parameter `name` (already stripped) or one of its suffixes names. */
static net_param *find_by_suffix(net *n, const char *name)
{
    const char *cur = name;
    for (;;) {
        net_param *p = net_find_param(n, cur);
        if (p)
            return p;
        const char *slash = strchr(cur, '/');
        if (!slash || !strchr(slash + 1, '/'))
            return NULL;
        cur = slash + 1;
    }
}

/* The layer component of "a/b/layer/param" into buf ("" when none). */
static void layer_of(const char *name, char *buf, size_t cap)
{
    const char *last = strrchr(name, '/');
    buf[0] = 0;
    if (!last)
        return;
    const char *start = last;
    while (start > name && start[-1] != '/')
        start--;
    snprintf(buf, cap, "%.*s", (int)(last - start), start);
}

static int is_head_layer_name(const char *l)
{
    if (!strcmp(l, "predictions") || !strcmp(l, "logits") || !strcmp(l, "fc") ||
        !strcmp(l, "fc1") || !strcmp(l, "fc2") || !strcmp(l, "dense") ||
        !strncmp(l, "classifier", 10))
        return 1;
    if (!strncmp(l, "dense_", 6) && l[6]) {
        for (const char *d = l + 6; *d; d++)
            if (!isdigit((unsigned char)*d))
                return 0;
        return 1;
    }
    return 0;
}

static char *shape_str64(const int64_t *shape, int ndim, char *buf, size_t n)
{
    return tset_shape_str(shape, ndim, buf, n);
}

static char *shape_str_param(const net_param *p, char *buf, size_t n)
{
    int64_t s[4];
    for (int i = 0; i < p->ndim; i++)
        s[i] = p->shape[i];
    return tset_shape_str(s, p->ndim, buf, n);
}

static int fits(const tset_entry *t, const net_param *p)
{
    if (t->ndim != p->ndim)
        return 0;
    for (int k = 0; k < p->ndim; k++)
        if (t->shape[k] != p->shape[k])
            return 0;
    return 1;
}

/* Records tensor i -> parameter p after the shape check. */
static int assign(net *n, const tset *s, int i, net_param *p, int *map, int *owner,
                  const char *how, tl_err *e)
{
    const tset_entry *t = &s->v[i];
    int pi = (int)(p - n->params);
    if (!fits(t, p)) {
        char a[96], b[96];
        return tl_errf(e, TL_ESHAPE, "tensor '%s'%s has shape %s, but parameter %s needs %s",
                       t->name, how, shape_str64(t->shape, t->ndim, a, sizeof a), p->name,
                       shape_str_param(p, b, sizeof b));
    }
    if (owner[pi] >= 0)
        return tl_errf(e, TL_EFORMAT, "tensors '%s' and '%s' both map to parameter %s",
                       s->v[owner[pi]].name, t->name, p->name);
    map[i] = pi;
    owner[pi] = i;
    return 0;
}

/* ---- the InceptionV3 fallback: pairing auto-named conv/BN layers by position */

typedef struct {
    char prefix[256];    /* the layer part of the (stripped) tensor name */
    int is_conv;         /* else batch norm */
    long key;            /* the number ending the layer name, 0 without one */
    int seq;             /* first appearance */
} src_group;

typedef struct {
    int layer;
    long key;
} net_group;

/* Trailing "_<digits>" of the last path component of s, else 0. */
static long trailing_number(const char *s)
{
    const char *b = strrchr(s, '/');
    b = b ? b + 1 : s;
    const char *u = strrchr(b, '_');
    if (!u || !u[1])
        return 0;
    for (const char *d = u + 1; *d; d++)
        if (!isdigit((unsigned char)*d))
            return 0;
    return strtol(u + 1, NULL, 10);
}

static int cmp_src(const void *a, const void *b)
{
    const src_group *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq - y->seq;
}

static int cmp_net(const void *a, const void *b)
{
    const net_group *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->layer - y->layer;
}

/* Sorts by key unless two share one (a name without a number and a
 * numbered one, or unrelated names): then keeps appearance order. */
static void order_src(src_group *g, int k)
{
    qsort(g, (size_t)k, sizeof *g, cmp_src);
    for (int i = 1; i < k; i++)
        if (g[i].key == g[i - 1].key) {
            for (int a = 1; a < k; a++) /* back to appearance order */
                for (int b = a; b > 0 && g[b].seq < g[b - 1].seq; b--) {
                    src_group t = g[b];
                    g[b] = g[b - 1];
                    g[b - 1] = t;
                }
            return;
        }
}

static int is_keras_inception(const net *n)
{
    return n->convention == NET_KERAS && net_find_layer(n, "mixed10") >= 0;
}

static int pair_by_position(net *n, const tset *s, char **names, const int *dropped, int *map,
                            int *owner, int with_head, int *by_order, tl_err *e)
{
    int rc = 0;
    src_group *sg = calloc(s->n + 1, sizeof *sg);
    net_group *ng = calloc((size_t)n->n_layers + 1, sizeof *ng);
    int *grp = malloc((s->n + 1) * sizeof *grp);
    if (!sg || !ng || !grp) {
        rc = tl_errf(e, TL_ENOMEM, "out of memory");
        goto out;
    }
    int nsg = 0;
    for (size_t i = 0; i < s->n; i++) {
        grp[i] = -1;
        if (map[i] >= 0 || dropped[i])
            continue;
        const char *slash = strrchr(names[i], '/');
        if (!slash || (size_t)(slash - names[i]) >= sizeof sg->prefix)
            continue;
        int len = (int)(slash - names[i]);
        int g = 0;
        while (g < nsg && (strncmp(sg[g].prefix, names[i], (size_t)len) || sg[g].prefix[len]))
            g++;
        if (g == nsg) {
            snprintf(sg[g].prefix, sizeof sg->prefix, "%.*s", len, names[i]);
            sg[g].is_conv = -1;
            sg[g].key = trailing_number(sg[g].prefix);
            sg[g].seq = nsg++;
        }
        grp[i] = g;
        if (!strcmp(slash + 1, "kernel") && s->v[i].ndim == 4)
            sg[g].is_conv = 1;
        else if (!strcmp(slash + 1, "moving_mean"))
            sg[g].is_conv = 0;
    }
    /* keep conv groups first, then BN groups, each in their own order;
     * groups that are neither are left unused */
    int nconv = 0, nbn = 0;
    src_group *conv = calloc((size_t)nsg + 1, sizeof *conv), *bn = calloc((size_t)nsg + 1, sizeof *bn);
    if (!conv || !bn) {
        free(conv);
        free(bn);
        rc = tl_errf(e, TL_ENOMEM, "out of memory");
        goto out;
    }
    for (int g = 0; g < nsg; g++) {
        if (sg[g].is_conv == 1)
            conv[nconv++] = sg[g];
        else if (sg[g].is_conv == 0)
            bn[nbn++] = sg[g];
    }
    order_src(conv, nconv);
    order_src(bn, nbn);

    int nnc = 0, nnb = 0;
    net_group *nconvs = ng, *nbns = NULL;
    for (int l = 0; l < n->n_layers; l++) /* convs first... */
        if (n->layers[l].kind == NET_CONV && (with_head || n->features < 0 || l <= n->features))
            nconvs[nnc++] = (net_group){l, trailing_number(n->layers[l].name)};
    nbns = ng + nnc;
    for (int l = 0; l < n->n_layers; l++) /* ...then BNs, in the same array */
        if (n->layers[l].kind == NET_BN && (with_head || n->features < 0 || l <= n->features))
            nbns[nnb++] = (net_group){l, trailing_number(n->layers[l].name)};
    qsort(nconvs, (size_t)nnc, sizeof *nconvs, cmp_net);
    qsort(nbns, (size_t)nnb, sizeof *nbns, cmp_net);
    if (nconv != nnc || nbn != nnb) {
        rc = tl_errf(e, TL_EFORMAT,
                     "no tensor name matches the network, and pairing InceptionV3 layers by "
                     "position needs as many: the source has %d conv layers and %d batch norms, "
                     "the network %d and %d", nconv, nbn, nnc, nnb);
        goto out2;
    }
    for (int pass = 0; pass < 2 && !rc; pass++) {
        src_group *src = pass ? bn : conv;
        net_group *dst = pass ? nbns : nconvs;
        int cnt = pass ? nbn : nconv;
        for (int k = 0; k < cnt && !rc; k++) {
            int g = 0;
            while (g < nsg && strcmp(sg[g].prefix, src[k].prefix))
                g++;
            const char *lname = n->layers[dst[k].layer].name;
            for (size_t i = 0; i < s->n && !rc; i++) {
                if (grp[i] != g)
                    continue;
                char pname[NET_PARAM_NAME_MAX + 64];
                snprintf(pname, sizeof pname, "%s/%s", lname, strrchr(names[i], '/') + 1);
                net_param *p = net_find_param(n, pname);
                if (!p)
                    continue; /* stays unused */
                char how[NET_NAME_MAX + 40];
                snprintf(how, sizeof how, " (paired by position with layer %s)", lname);
                rc = assign(n, s, (int)i, p, map, owner, how, e);
                if (!rc)
                    (*by_order)++;
            }
        }
    }
out2:
    free(conv);
    free(bn);
out:
    free(sg);
    free(ng);
    free(grp);
    return rc;
}

int net_load_tset(net *n, const tset *s, int strict, int with_head, net_load_summary *summary,
                  tl_err *e)
{
    net_load_summary sum_local;
    net_load_summary *sum = summary ? summary : &sum_local;
    memset(sum, 0, sizeof *sum);
    if (!n->finalized)
        return tl_errf(e, TL_EINVAL, "weights: the network must be finalized before loading");
    int rc = 0;
    int *map = malloc((s->n + 1) * sizeof *map);
    int *dropped = calloc(s->n + 1, sizeof *dropped);
    int *deferred = malloc((s->n + 1) * sizeof *deferred);
    int *owner = malloc(((size_t)n->n_params + 1) * sizeof *owner);
    char **names = calloc(s->n + 1, sizeof *names);
    if (!map || !dropped || !deferred || !owner || !names) {
        rc = tl_errf(e, TL_ENOMEM, "weights: out of memory");
        goto out;
    }
    for (int i = 0; i < n->n_params; i++)
        owner[i] = -1;

    /* 1. by name. In Keras's InceptionV3 the conv/BN names are auto-names
     * that may be another session's: hold those matches back (deferred) */
    int iv3 = is_keras_inception(n);
    for (size_t i = 0; i < s->n; i++) {
        map[i] = -1;
        deferred[i] = -1;
        if (!(names[i] = strip_colon(s->v[i].name))) {
            rc = tl_errf(e, TL_ENOMEM, "weights: out of memory");
            goto out;
        }
        net_param *p = find_by_suffix(n, names[i]);
        char layer[256];
        layer_of(names[i], layer, sizeof layer);
        if (!with_head && (p ? is_head_param(n, p) : is_head_layer_name(layer))) {
            dropped[i] = 1;
            continue;
        }
        if (p && iv3 && !is_head_param(n, p) &&
            (n->layers[p->layer].kind == NET_CONV || n->layers[p->layer].kind == NET_BN)) {
            deferred[i] = (int)(p - n->params);
            continue;
        }
        if (p && (rc = assign(n, s, (int)i, p, map, owner, "", e)))
            goto out;
    }

    /* 2. Keras InceptionV3: the names are ours when every deferred match
     * fits and nothing is left over; else pair by position */
    if (iv3) {
        int names_ok = 1;
        for (size_t i = 0; i < s->n && names_ok; i++) {
            if (deferred[i] >= 0)
                names_ok = fits(&s->v[i], &n->params[deferred[i]]);
            else if (map[i] < 0 && !dropped[i])
                names_ok = 0;
        }
        for (size_t i = 0; names_ok && i < s->n; i++)
            if (deferred[i] >= 0 &&
                (rc = assign(n, s, (int)i, &n->params[deferred[i]], map, owner, "", e)))
                goto out;
        int left = 0;
        for (size_t i = 0; i < s->n; i++)
            left += map[i] < 0 && !dropped[i];
        if (!names_ok && left &&
            (rc = pair_by_position(n, s, names, dropped, map, owner, with_head, &sum->by_order, e)))
            goto out;
    }

    /* 3. summary, strictness */
    for (size_t i = 0; i < s->n; i++) {
        if (dropped[i]) {
            sum->dropped++;
        } else if (map[i] >= 0) {
            sum->matched++;
        } else if (sum->unused++ == 0) {
            snprintf(sum->first_unused, sizeof sum->first_unused, "%s", s->v[i].name);
        }
    }
    for (int i = 0; i < n->n_params; i++)
        if (owner[i] < 0 && (with_head || !is_head_param(n, &n->params[i])) &&
            sum->missing++ == 0)
            snprintf(sum->first_missing, sizeof sum->first_missing, "%s", n->params[i].name);
    if (strict && sum->unused) {
        rc = tl_errf(e, TL_EFORMAT, "tensor '%s' fits no parameter of the network (%d such)",
                     sum->first_unused, sum->unused);
        goto out;
    }
    if (strict && sum->missing) {
        rc = tl_errf(e, TL_ENOTFOUND, "no tensor for parameter %s (%d missing)",
                     sum->first_missing, sum->missing);
        goto out;
    }

    /* 4. only now write */
    for (size_t i = 0; i < s->n; i++)
        if (map[i] >= 0) {
            const net_param *p = &n->params[map[i]];
            memcpy(n->weights + p->off, s->v[i].data, p->n * sizeof(float));
        }
    net_weights_changed(n);
out:
    if (names)
        for (size_t i = 0; i < s->n; i++)
            free(names[i]);
    free(names);
    free(map);
    free(dropped);
    free(deferred);
    free(owner);
    return rc;
}
