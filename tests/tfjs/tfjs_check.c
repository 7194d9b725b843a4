/* Parity with TensorFlow.js on the real nsfwjs weights.
 *
 *   tfjs_check <model.min.js | model.json | dir> <refdir>
 *
 * Reads the tfjs model with weights_tfjs_read, builds the same network with
 * our builders in the Keras convention (the backbone named by the topology
 * and the package's own head, translated layer by layer from the topology),
 * loads every tensor by name, runs inference on <refdir>/input.f32 written
 * by make_reference.js and compares with tfjs:
 *   softmax probabilities   max abs error        <= 1e-4
 *   pooled features         max abs error / max |ref| <= 1e-4
 * Exits 1 over tolerance, 2 on a setup error.
 *
 * Names: nsfwjs's models come from Keras 2.2.4, whose auto-names start at 1
 * (conv2d_1, batch_normalization_1, dense_1) where tf.keras's (ours) start
 * unsuffixed (conv2d, batch_normalization, dense); the head's last Dense is
 * our "predictions". The loader below maps names and insists that every
 * parameter is found with its exact shape and that no tensor is left over. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/weights/weights_tfjs.h"
#include "worker/net/backbones.h"

#define TOL_PROBS 1e-4
#define TOL_FEATURES 1e-4
#define MAX_HEAD 16

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *read_f32(const char *dir, const char *name, size_t n)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) {
        fprintf(stderr, "tfjs_check: cannot open %s\n", p);
        return NULL;
    }
    float *v = malloc(n * sizeof *v);
    size_t got = v ? fread(v, sizeof *v, n, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) {
        fprintf(stderr, "tfjs_check: %s does not hold %zu floats\n", p, n);
        free(v);
        return NULL;
    }
    return v;
}

static json_t *layer_config(const weights_tfjs_info *info, int i)
{
    return json_loads(info->layers[i].config, 0, NULL);
}

/* The layers after the backbone, as net_head ops: pooling to 1x1
 * (GlobalAveragePooling2D, or an AveragePooling2D whose window is the whole
 * map), Flatten of a 1x1 map, Dense relu, Dropout, and a last Dense with
 * softmax (the classifier). Anything else is reported and refused. */
static int head_from_topology(const weights_tfjs_info *info, int fh, int fw, net_head_op *ops,
                              int *n_ops, int *classes, char dense_names[][NET_NAME_MAX])
{
    int n = 0, dense = 0, pooled = 0;
    *classes = 0;
    for (int i = info->backbone_out + 1; i < info->n_layers; i++) {
        const char *cls = info->layers[i].class_name, *name = info->layers[i].name;
        json_t *c = layer_config(info, i);
        int ok = 1;
        if (*classes) {
            ok = 0; /* nothing may follow the classifier */
        } else if (!strcmp(cls, "GlobalAveragePooling2D") && !pooled) {
            ops[n++] = (net_head_op){.kind = NET_HEAD_GAP};
            pooled = 1;
        } else if (!strcmp(cls, "AveragePooling2D") && !pooled) {
            json_t *ps = json_object_get(c, "pool_size");
            ok = json_integer_value(json_array_get(ps, 0)) == fh &&
                 json_integer_value(json_array_get(ps, 1)) == fw;
            if (ok)
                ops[n++] = (net_head_op){.kind = NET_HEAD_GAP};
            pooled = 1;
        } else if (!strcmp(cls, "Flatten") && pooled) {
            /* a 1x1 map: Flatten changes nothing */
        } else if (!strcmp(cls, "Dropout") && pooled) {
            ops[n++] = (net_head_op){.kind = NET_HEAD_DROPOUT,
                                     .rate = (float)json_number_value(json_object_get(c, "rate"))};
        } else if (!strcmp(cls, "Dense") && pooled) {
            const char *act = json_string_value(json_object_get(c, "activation"));
            int units = (int)json_integer_value(json_object_get(c, "units"));
            snprintf(dense_names[dense++], NET_NAME_MAX, "%s", name);
            if (act && !strcmp(act, "softmax"))
                *classes = units;
            else if (act && !strcmp(act, "relu"))
                ops[n++] = (net_head_op){.kind = NET_HEAD_DENSE, .units = units, .act = NET_ACT_RELU};
            else if (act && !strcmp(act, "linear"))
                ops[n++] = (net_head_op){.kind = NET_HEAD_DENSE, .units = units, .act = NET_ACT_NONE};
            else
                ok = 0;
        } else {
            ok = 0;
        }
        json_decref(c);
        if (!ok || n >= MAX_HEAD || dense >= MAX_HEAD) {
            fprintf(stderr, "tfjs_check: head layer %s (%s) has no net_head counterpart\n", name,
                    cls);
            return -1;
        }
    }
    *n_ops = n;
    if (!*classes) {
        fprintf(stderr, "tfjs_check: the head does not end in a softmax Dense\n");
        return -1;
    }
    return 0;
}

/* Our parameter name -> the tfjs tensor name. */
static void tfjs_name(const char *ours, const tset *w, int n_dense,
                      char dense_names[][NET_NAME_MAX], char *out, size_t cap)
{
    const char *slash = strchr(ours, '/');
    char layer[NET_PARAM_NAME_MAX];
    snprintf(layer, sizeof layer, "%.*s", (int)(slash - ours), ours);
    const char *suffix = slash + 1;
    /* head Dense layers in order: dense, dense_1, ..., predictions */
    int d = -1;
    if (!strcmp(layer, "dense"))
        d = 0;
    else if (!strncmp(layer, "dense_", 6))
        d = atoi(layer + 6);
    else if (!strcmp(layer, "predictions"))
        d = n_dense - 1;
    if (d >= 0 && d < n_dense) {
        snprintf(out, cap, "%s/%s", dense_names[d], suffix);
        return;
    }
    /* Keras 2.2 auto-names start at _1 */
    static const char *const auto_names[] = {"conv2d", "batch_normalization"};
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(auto_names[k]);
        if (strncmp(layer, auto_names[k], kl) || (layer[kl] && layer[kl] != '_'))
            continue;
        char probe[NET_PARAM_NAME_MAX + 8];
        snprintf(probe, sizeof probe, "%s/%s", auto_names[k],
                 !strcmp(auto_names[k], "conv2d") ? "kernel" : "beta");
        if (tset_find(w, probe))
            break; /* tf.keras naming: same as ours */
        int idx = layer[kl] ? atoi(layer + kl + 1) : 0;
        snprintf(out, cap, "%s_%d/%s", auto_names[k], idx + 1, suffix);
        return;
    }
    snprintf(out, cap, "%s", ours);
}

static int load_by_name(net *n, const tset *w, int n_dense, char dense_names[][NET_NAME_MAX])
{
    char *used = calloc(w->n, 1);
    int bad = 0;
    for (int i = 0; i < n->n_params && !bad; i++) {
        net_param *p = &n->params[i];
        char tn[2 * NET_PARAM_NAME_MAX];
        tfjs_name(p->name, w, n_dense, dense_names, tn, sizeof tn);
        const tset_entry *t = tset_find(w, tn);
        if (!t) {
            fprintf(stderr, "tfjs_check: parameter %s (tfjs '%s') not in the weights\n", p->name, tn);
            bad = 1;
            break;
        }
        int same = t->ndim == p->ndim;
        for (int k = 0; same && k < p->ndim; k++)
            same = t->shape[k] == p->shape[k];
        if (!same) {
            char a[64], b[64];
            int64_t ps[4];
            for (int k = 0; k < p->ndim; k++)
                ps[k] = p->shape[k];
            fprintf(stderr, "tfjs_check: %s: tfjs '%s' is %s, the net wants %s\n", p->name, tn,
                    tset_shape_str(t->shape, t->ndim, a, sizeof a), tset_shape_str(ps, p->ndim, b, sizeof b));
            bad = 1;
            break;
        }
        memcpy(net_param_data(n, p), t->data, t->n * sizeof(float));
        used[t - w->v] = 1;
    }
    for (size_t i = 0; i < w->n && !bad; i++)
        if (!used[i]) {
            fprintf(stderr, "tfjs_check: tfjs tensor %s fits no parameter\n", w->v[i].name);
            bad = 1;
        }
    free(used);
    net_weights_changed(n);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tfjs_check <model.min.js|model.json|dir> <refdir>\n");
        return 2;
    }
    const char *refdir = argv[2];
    tl_err e = {0};
    tset w;
    tset_init(&w);
    weights_tfjs_info info;
    double t0 = now();
    if (weights_tfjs_read(argv[1], &w, &info, &e)) {
        fprintf(stderr, "tfjs_check: %s\n", e.msg);
        return 2;
    }
    printf("%s: %s, %zu tensors, %zu shard(s), %zu bytes, read in %.2f s\n", info.model_file,
           info.summary, info.n_tensors, info.n_shards, info.weight_bytes, now() - t0);
    if (!info.backbone[0] || info.backbone_out < 0 || info.input_h <= 0) {
        fprintf(stderr, "tfjs_check: no known backbone in the topology (%s)\n", info.summary);
        return 2;
    }

    /* the reference */
    char p[1024];
    snprintf(p, sizeof p, "%s/meta.json", refdir);
    json_error_t je;
    json_t *meta = json_load_file(p, 0, &je);
    if (!meta) {
        fprintf(stderr, "tfjs_check: %s: %s\n", p, je.text);
        return 2;
    }
    int batch = (int)json_integer_value(json_object_get(meta, "batch"));
    int size = (int)json_integer_value(json_object_get(meta, "size"));
    int classes_ref = (int)json_integer_value(json_object_get(meta, "classes"));
    int feat_ref = (int)json_integer_value(json_object_get(meta, "features"));
    printf("reference: %d images at %d, tfjs %s, preprocessing %s\n", batch, size,
           json_string_value(json_object_get(meta, "tfjs")),
           json_string_value(json_object_get(meta, "preprocessing")));
    if (size != info.input_h || size != info.input_w) {
        fprintf(stderr, "tfjs_check: reference size %d, model input %dx%d\n", size, info.input_h,
                info.input_w);
        return 2;
    }

    /* the network: backbone + the package's head */
    net n;
    net_init(&n, size, size, 3, NET_KERAS);
    net_backbone_cfg cfg = {.alpha = info.alpha};
    int x = net_backbone(&n, info.backbone, &cfg, &e);
    if (x < 0) {
        fprintf(stderr, "tfjs_check: %s\n", e.msg);
        return 2;
    }
    net_head_op ops[MAX_HEAD];
    char dense_names[MAX_HEAD][NET_NAME_MAX];
    int n_ops, classes;
    if (head_from_topology(&info, n.layers[x].h, n.layers[x].w, ops, &n_ops, &classes,
                           dense_names))
        return 2;
    int n_dense = 1;
    for (int i = 0; i < n_ops; i++)
        n_dense += ops[i].kind == NET_HEAD_DENSE;
    printf("head:");
    for (int i = 0; i < n_ops; i++)
        printf(ops[i].kind == NET_HEAD_GAP       ? " gap"
               : ops[i].kind == NET_HEAD_DROPOUT ? " dropout"
                                                 : " dense%s",
               ops[i].act == NET_ACT_RELU ? "-relu" : "");
    printf(" dense(%d)-softmax\n", classes);
    if (classes != classes_ref) {
        fprintf(stderr, "tfjs_check: %d classes, the reference has %d\n", classes, classes_ref);
        return 2;
    }
    int last = net_head(&n, x, ops, n_ops, classes, &e);
    if (last < 0) {
        fprintf(stderr, "tfjs_check: %s\n", e.msg);
        return 2;
    }
    int gap = net_find_layer(&n, "global_average_pooling2d");
    if (gap < 0 || n.layers[gap].c != feat_ref) {
        fprintf(stderr, "tfjs_check: pooled features: %d channels, the reference has %d\n",
                gap < 0 ? -1 : n.layers[gap].c, feat_ref);
        return 2;
    }
    /* keep the pooled features readable after the forward pass: the plan
     * keeps every output from first_backward on */
    net_set_trainable_from(&n, gap);
    if (net_finalize(&n, batch, 1, &e)) {
        fprintf(stderr, "tfjs_check: %s\n", e.msg);
        return 2;
    }
    if (load_by_name(&n, &w, n_dense, dense_names))
        return 2;

    size_t in_n = (size_t)batch * size * size * 3;
    float *input = read_f32(refdir, "input.f32", in_n);
    float *probs_ref = read_f32(refdir, "probs.f32", (size_t)batch * classes);
    float *feat = read_f32(refdir, "features.f32", (size_t)batch * feat_ref);
    if (!input || !probs_ref || !feat)
        return 2;

    t0 = now();
    net_forward(&n, input, batch, 0);
    double dt = now() - t0;

    /* softmax of our logits, in double */
    const float *logits = net_output(&n);
    double err_p = 0;
    for (int b = 0; b < batch; b++) {
        const float *z = logits + (size_t)b * classes;
        double m = z[0], s = 0;
        for (int k = 1; k < classes; k++)
            m = z[k] > m ? z[k] : m;
        for (int k = 0; k < classes; k++)
            s += exp(z[k] - m);
        printf("image %d:", b);
        for (int k = 0; k < classes; k++) {
            double pk = exp(z[k] - m) / s, d = fabs(pk - probs_ref[b * classes + k]);
            err_p = d > err_p ? d : err_p;
            printf(" %.4f", pk);
        }
        printf("\n");
    }
    const float *f = n.layers[gap].out;
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)batch * feat_ref; i++) {
        double d = fabs((double)f[i] - feat[i]);
        num = d > num ? d : num;
        den = fabs(feat[i]) > den ? fabs(feat[i]) : den;
    }
    double err_f = den > 0 ? num / den : num;
    int ok = err_p <= TOL_PROBS && err_f <= TOL_FEATURES;
    printf("%s %d: probabilities max abs error %.3g (tol %.0e), pooled features max abs error "
           "%.3g, relative %.3g (tol %.0e); forward %.2f s for %d images: %s\n",
           info.backbone, size, err_p, TOL_PROBS, num, err_f, TOL_FEATURES, dt, batch,
           ok ? "OK" : "FAIL");
    free(input);
    free(probs_ref);
    free(feat);
    json_decref(meta);
    net_free(&n);
    weights_tfjs_info_free(&info);
    tset_free(&w);
    return ok ? 0 : 1;
}
