/* PyTorch parity check of a whole backbone + classifier head.
 *
 *   parity_check list <backbone> <keras|torchvision> <size> <classes>
 *       prints the network's parameters in order, one "name<TAB>d0,d1,.." per
 *       line, so make_reference.py can verify its mapping of torch tensors
 *       onto our parameters instead of trusting it.
 *   parity_check check <dir> [eval|train ...]
 *       loads <dir>/weights_<mode>.safetensors and compares, for each mode, our
 *       logits, loss and every parameter gradient with <dir>/ref_<mode>.safetensors
 *       written by make_reference.py. Exits 1 when any error is over tolerance.
 *
 * The reference file holds "input" (N,H,W,3), "labels" (N) int32, "logits"
 * (N,classes), "loss" (1), and per trainable parameter "grad:<param>" in our
 * layout, "base:<param>" (torch float32's own error against the float64
 * reference, for scale) and, for sums over positions (biases, BN beta),
 * "floor:<param>": 1e-3 * max over channels of sum |dL/dout| of the layer,
 * a denominator floor for gradients that cancel to ~0 by construction (a conv
 * bias before a training-mode BN), where any relative error is noise.
 * Metadata: backbone, convention, size, batch, classes, mode, and
 * weights_format: "torch" (torch names and layouts: net_load_safetensors) or
 * "native" (our names and layouts, mapped by the script: Keras convention). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/weights/safetensors.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/net/net_load.h"

#define TOL_LOGITS 1e-4
#define TOL_LOSS 1e-4
#define TOL_GRAD 1e-3
/* A gradient that torch float32 itself gets wrong by more than TOL_GRAD
 * (ill-conditioned: training-mode BN at 7x7 x batch 2) may be off by up to
 * BASE_FACTOR times torch float32's own error. */
#define BASE_FACTOR 10.0

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_convention(const char *s, net_convention *cv)
{
    if (!strcmp(s, "keras"))
        *cv = NET_KERAS;
    else if (!strcmp(s, "torchvision"))
        *cv = NET_TORCHVISION;
    else
        return -1;
    return 0;
}

/* Backbone + GAP + Dense(classes) "predictions", finalized for batch. */
static int build(net *n, const char *backbone, net_convention cv, int size, int classes,
                 int batch, int bn_update, tl_err *e)
{
    net_init(n, size, size, 3, cv);
    int x = net_backbone(n, backbone, NULL, e);
    if (x < 0)
        return x;
    net_head_op gap = {.kind = NET_HEAD_GAP};
    x = net_head(n, x, &gap, 1, classes, e);
    if (x < 0)
        return x;
    if (bn_update)
        net_set_bn_update(n, 1);
    return net_finalize(n, batch, 1, e);
}

static int cmd_list(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: parity_check list <backbone> <keras|torchvision> <size> <classes>\n");
        return 2;
    }
    net_convention cv;
    if (parse_convention(argv[3], &cv)) {
        fprintf(stderr, "parity_check: unknown convention '%s'\n", argv[3]);
        return 2;
    }
    net n;
    tl_err e = {0};
    if (build(&n, argv[2], cv, atoi(argv[4]), atoi(argv[5]), 1, 0, &e)) {
        fprintf(stderr, "parity_check: %s\n", e.msg);
        net_free(&n);
        return 1;
    }
    for (int i = 0; i < n.n_params; i++) {
        const net_param *p = &n.params[i];
        printf("%s\t", p->name);
        for (int k = 0; k < p->ndim; k++)
            printf("%s%d", k ? "," : "", p->shape[k]);
        printf("\n");
    }
    net_free(&n);
    return 0;
}

/* Our names and layouts: every parameter must be there with its shape. */
static int load_native(net *n, const char *path, tl_err *e)
{
    weights_st *st = NULL;
    int rc = weights_st_open(&st, path, e);
    if (rc)
        return rc;
    size_t used = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const net_param *p = &n->params[i];
        const weights_st_tensor *t = weights_st_find(st, p->name);
        if (!t) {
            rc = tl_errf(e, TL_ENOTFOUND, "weights %s: no tensor for parameter %s", path, p->name);
            break;
        }
        int fits = t->ndim == p->ndim;
        for (int k = 0; fits && k < p->ndim; k++)
            fits = t->shape[k] == (size_t)p->shape[k];
        if (!fits) {
            rc = tl_errf(e, TL_ESHAPE, "weights %s: tensor '%s' does not have its shape", path,
                         p->name);
            break;
        }
        rc = weights_st_to_f32(t, net_param_data(n, p), p->n, e);
        used++;
    }
    if (!rc && used != weights_st_count(st))
        rc = tl_errf(e, TL_EFORMAT, "weights %s: %zu tensors but the network has %zu parameters",
                     path, weights_st_count(st), used);
    weights_st_close(st);
    return rc;
}

/* A float tensor of exactly n elements, converted into a new buffer. */
static float *get_f32(const weights_st *st, const char *name, size_t n, tl_err *e)
{
    const weights_st_tensor *t = weights_st_find(st, name);
    if (!t) {
        tl_errf(e, TL_ENOTFOUND, "reference: no tensor '%s'", name);
        return NULL;
    }
    float *v = malloc(n * sizeof *v);
    if (!v || weights_st_to_f32(t, v, n, e)) {
        free(v);
        return NULL;
    }
    return v;
}

/* One scalar of a tensor, or dflt when absent. */
static double get_scalar(const weights_st *st, const char *name, double dflt)
{
    const weights_st_tensor *t = weights_st_find(st, name);
    float v;
    if (!t || weights_st_to_f32(t, &v, 1, NULL))
        return dflt;
    return v;
}

/* max |a-b| / max(max |b|, floor, tiny); NaN/inf in a gives INFINITY. */
static double rel_err(const float *a, const float *b, size_t n, double floor, double *maxb)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) /* also catches NaN */
            md = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > mb)
            mb = fabs((double)b[i]);
    }
    if (maxb)
        *maxb = mb;
    double den = mb > floor ? mb : floor;
    return md / (den > 1e-30 ? den : 1e-30);
}

typedef struct {
    const char *name;
    double err, base, maxb, tol;
    int floored;
} row;

static int by_err_desc(const void *pa, const void *pb)
{
    const row *a = pa, *b = pb;
    return (a->err < b->err) - (a->err > b->err);
}

/* Runs one mode; returns 0 when within tolerance, 1 when not, -1 on error. */
static int check_mode(const char *dir, const char *mode, double tol_grad)
{
    char ref_path[4096], w_path[4096];
    snprintf(ref_path, sizeof ref_path, "%s/ref_%s.safetensors", dir, mode);
    snprintf(w_path, sizeof w_path, "%s/weights_%s.safetensors", dir, mode);
    tl_err e = {0};
    weights_st *ref = NULL;
    if (weights_st_open(&ref, ref_path, &e)) {
        fprintf(stderr, "parity_check: %s\n", e.msg);
        return -1;
    }
    const char *backbone = weights_st_metadata(ref, "backbone");
    const char *conv = weights_st_metadata(ref, "convention");
    const char *fmt = weights_st_metadata(ref, "weights_format");
    const char *ssize = weights_st_metadata(ref, "size");
    const char *sbatch = weights_st_metadata(ref, "batch");
    const char *sclasses = weights_st_metadata(ref, "classes");
    net_convention cv;
    if (!backbone || !conv || !fmt || !ssize || !sbatch || !sclasses ||
        parse_convention(conv, &cv)) {
        fprintf(stderr, "parity_check: %s: metadata incomplete\n", ref_path);
        weights_st_close(ref);
        return -1;
    }
    int size = atoi(ssize), batch = atoi(sbatch), classes = atoi(sclasses);
    int train = !strcmp(mode, "train");
    net n;
    int rc = build(&n, backbone, cv, size, classes, batch, train, &e);
    if (!rc)
        rc = !strcmp(fmt, "torch") ? net_load_safetensors(&n, w_path, 1, &e)
                                   : load_native(&n, w_path, &e);
    float *x = NULL, *want_logits = NULL, *probs = NULL, *dlogits = NULL;
    row *rows = NULL;
    int status = -1;
    if (rc) {
        fprintf(stderr, "parity_check: %s %s %s: %s\n", backbone, conv, mode, e.msg);
        goto done;
    }
    size_t in_n = (size_t)batch * size * size * 3, out_n = (size_t)batch * classes;
    const weights_st_tensor *tl = weights_st_find(ref, "labels");
    x = get_f32(ref, "input", in_n, &e);
    want_logits = get_f32(ref, "logits", out_n, &e);
    if (!x || !want_logits || !tl || tl->dtype != WEIGHTS_ST_I32 ||
        tl->numel != (size_t)batch) {
        fprintf(stderr, "parity_check: %s: %s\n", ref_path,
                e.msg[0] ? e.msg : "labels missing or not int32 (batch)");
        goto done;
    }
    const int *labels = tl->data;
    probs = malloc(out_n * sizeof *probs);
    dlogits = calloc(out_n, sizeof *dlogits);
    rows = calloc((size_t)n.n_params, sizeof *rows);
    if (!probs || !dlogits || !rows) {
        fprintf(stderr, "parity_check: out of memory\n");
        goto done;
    }

    char be[256];
    printf("%s %s %s: %s\n", backbone, conv, mode, net_backend_summary(&n, be, sizeof be));
    double t0 = now();
    net_zero_grads(&n);
    net_forward(&n, x, batch, train);
    double t1 = now();
    float loss = nn_softmax_xent_forward(probs, net_output(&n), labels, batch, classes);
    nn_softmax_xent_backward(dlogits, probs, labels, batch, classes);
    net_backward(&n, dlogits, batch);
    double t2 = now();

    double e_logits = rel_err(net_output(&n), want_logits, out_n, 0, NULL);
    double want_loss = get_scalar(ref, "loss", NAN);
    double e_loss = fabs(loss - want_loss) / fmax(fabs(want_loss), 1e-30);
    int nrows = 0, missing = 0, trainable = 0;
    char key[NET_PARAM_NAME_MAX + 16];
    for (int i = 0; i < n.n_params; i++) {
        net_param *p = &n.params[i];
        if (!net_param_trainable(&n, p))
            continue;
        trainable++;
        snprintf(key, sizeof key, "grad:%s", p->name);
        float *want = get_f32(ref, key, p->n, &e);
        if (!want) {
            if (!missing)
                fprintf(stderr, "parity_check: %s\n", e.msg);
            missing++;
            continue;
        }
        row *r = &rows[nrows++];
        r->name = p->name;
        snprintf(key, sizeof key, "floor:%s", p->name);
        double floor = get_scalar(ref, key, 0);
        r->err = rel_err(net_param_grad(&n, p), want, p->n, floor, &r->maxb);
        r->floored = floor > r->maxb;
        snprintf(key, sizeof key, "base:%s", p->name);
        r->base = get_scalar(ref, key, NAN);
        r->tol = r->base * BASE_FACTOR > tol_grad ? r->base * BASE_FACTOR : tol_grad;
        free(want);
    }
    /* the reference must not hold gradients we do not compute */
    size_t ref_grads = 0;
    for (size_t i = 0; i < weights_st_count(ref); i++)
        ref_grads += !strncmp(weights_st_get(ref, i)->name, "grad:", 5);

    qsort(rows, (size_t)nrows, sizeof *rows, by_err_desc);
    int bad = 0;
    for (int i = 0; i < nrows; i++)
        bad += !(rows[i].err <= rows[i].tol);
    int fail = !(e_logits <= TOL_LOGITS) || !(e_loss <= TOL_LOSS) || bad || missing ||
               ref_grads != (size_t)trainable;

    printf("== %s %s %s: %dx%d batch %d, %d classes; forward %.2f s, backward %.2f s\n",
           backbone, conv, mode, size, size, batch, classes, t1 - t0, t2 - t1);
    printf("   logits  rel err %.3e (tol %.0e; torch f32 %.3e)\n", e_logits, TOL_LOGITS,
           get_scalar(ref, "base_logits", NAN));
    printf("   loss    rel err %.3e (tol %.0e; ours %.7f, reference %.7f)\n", e_loss, TOL_LOSS,
           (double)loss, want_loss);
    int loose = 0;
    for (int i = 0; i < nrows; i++)
        loose += rows[i].tol > tol_grad;
    printf("   grads   %d tensors, %d over tol (%.0e, or %.0fx torch f32's error for the %d where "
           "that is larger)%s\n", nrows, bad, tol_grad, BASE_FACTOR, loose,
           missing ? ", some MISSING from the reference" : "");
    if (ref_grads != (size_t)trainable)
        printf("   reference has %zu gradients, the network %d trainable parameters\n",
               ref_grads, trainable);
    printf("   %-52s %10s %10s %10s %10s\n", "worst gradients", "rel err", "tol", "torch f32",
           "max |ref|");
    int show = nrows < 12 ? nrows : 12;
    for (int i = 0; i < nrows; i++) {
        if (i >= show && rows[i].err <= rows[i].tol)
            continue; /* every failure is listed, then the worst few */
        printf("   %-52s %10.3e %10.3e %10.3e %10.3e%s%s\n", rows[i].name, rows[i].err,
               rows[i].tol, rows[i].base, rows[i].maxb, rows[i].floored ? "  (floor)" : "",
               rows[i].err <= rows[i].tol ? "" : "  FAIL");
    }
    printf("   %s\n", fail ? "FAIL" : "ok");
    status = fail;
done:
    free(x);
    free(want_logits);
    free(probs);
    free(dlogits);
    free(rows);
    net_free(&n);
    weights_st_close(ref);
    return status;
}

static int cmd_check(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: parity_check check <dir> [eval|train ...]\n");
        return 2;
    }
    double tol_grad = TOL_GRAD;
    const char *env = getenv("PARITY_TOL_GRAD");
    if (env && atof(env) > 0)
        tol_grad = atof(env);
    /* default: every mode the script wrote a reference for (VGG16 has no BN,
     * so it has no separate training mode) */
    char *all[2];
    int nall = 0;
    static const char *const known[2] = {"eval", "train"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ref_%s.safetensors", argv[2], known[i]);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            all[nall++] = (char *)known[i];
        }
    }
    char **modes = argc > 3 ? argv + 3 : all;
    int nmodes = argc > 3 ? argc - 3 : nall;
    if (nmodes == 0) {
        fprintf(stderr, "parity_check: no ref_eval/ref_train.safetensors in %s\n", argv[2]);
        return 1;
    }
    engine_threads_set(0);
    int worst = 0;
    for (int i = 0; i < nmodes; i++) {
        int r = check_mode(argv[2], modes[i], tol_grad);
        if (r < 0)
            return 1;
        worst |= r;
    }
    return worst ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return cmd_list(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "check"))
        return cmd_check(argc, argv);
    fprintf(stderr, "usage: parity_check list <backbone> <convention> <size> <classes>\n"
                    "       parity_check check <dir> [eval|train ...]\n");
    return 2;
}
