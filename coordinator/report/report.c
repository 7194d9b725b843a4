/* report_write: results.json is read as untrusted input (a hand-edited or
 * truncated file must give a one-line error, not a crash or a page with
 * holes), checked into rep_results, and rendered by report_html.c. */
#include "coordinator/report/report.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/fileio.h"
#include "coordinator/report/report_int.h"

/* ---- checked access: every error names the file and the key path ----------- */

typedef struct {
    const char *file;
    tl_err *e;
} chk;

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* an optional key: OPT when it may be absent, NULLABLE when it may also be
 * null (absent or null leaves the value as it is) */
enum { REQUIRED, OPT, NULLABLE };

static int absent(const json_t *v, int opt)
{
    return (!v && opt) || (json_is_null(v) && opt == NULLABLE);
}

static int bad(chk *c, const char *path, const char *what, const json_t *v)
{
    if (!v)
        return tl_errf(c->e, TL_EFORMAT, "%s: %s: missing", c->file, path);
    return tl_errf(c->e, TL_EFORMAT, "%s: %s: expected %s, got %s", c->file, path, what,
                   type_name(v));
}

/* "parent.key" or "key" into out */
static const char *join(char *out, size_t n, const char *parent, const char *key)
{
    snprintf(out, n, "%s%s%s", parent, parent[0] ? "." : "", key);
    return out;
}

static int get_obj(chk *c, json_t *o, const char *parent, const char *key, json_t **out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    if (!json_is_object(v))
        return bad(c, join(p, sizeof p, parent, key), "an object", v);
    *out = v;
    return 0;
}

static int get_arr(chk *c, json_t *o, const char *parent, const char *key, json_t **out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    if (!json_is_array(v))
        return bad(c, join(p, sizeof p, parent, key), "an array", v);
    *out = v;
    return 0;
}

/* opt: see absent() */
static int get_str(chk *c, json_t *o, const char *parent, const char *key, int opt,
                   const char **out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    if (absent(v, opt))
        return 0;
    if (!json_is_string(v))
        return bad(c, join(p, sizeof p, parent, key), "a string", v);
    *out = json_string_value(v);
    return 0;
}

static int get_num(chk *c, json_t *o, const char *parent, const char *key, int opt, double *out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    if (absent(v, opt))
        return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return bad(c, join(p, sizeof p, parent, key), "a number", v);
    *out = json_number_value(v);
    return 0;
}

/* an integer >= 0 */
static int get_count(chk *c, json_t *o, const char *parent, const char *key, int opt, long *out)
{
    char p[256];
    json_t *v = json_object_get(o, key);
    if (absent(v, opt))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad(c, join(p, sizeof p, parent, key), "an integer >= 0", v);
    *out = (long)json_integer_value(v);
    return 0;
}

/* room for an array's n items (NULL for none); *rc set on error */
static void *items_alloc(chk *c, const char *path, size_t n, size_t max, size_t size, int *rc)
{
    void *p = NULL;
    *rc = 0;
    if (n > max)
        *rc = tl_errf(c->e, TL_EFORMAT, "%s: %s: %zu items is too many", c->file, path, n);
    else if (n && !(p = calloc(n, size)))
        *rc = tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    return p;
}

/* ---- results.json into rep_results ------------------------------------------- */

static void results_free(rep_results *r)
{
    for (int i = 0; i < r->n_trials; i++) {
        free(r->trials[i].confusion);
        free(r->trials[i].hist);
    }
    free(r->trials);
    free(r->caches);
    free(r->classes);
    free(r->bad);
    free(r->search.rungs);
}

static int load_history(chk *c, json_t *t, const char *tp, rep_trial *x)
{
    char p[256];
    json_t *h = NULL;
    int rc = get_arr(c, t, tp, "history", &h);
    if (rc)
        return rc;
    size_t n = json_array_size(h);
    if (n == 0)
        return 0;
    if (!(x->hist = calloc(n, sizeof *x->hist)))
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    for (size_t k = 0; k < n; k++) {
        json_t *eo = json_array_get(h, k);
        snprintf(p, sizeof p, "%s.history[%zu]", tp, k);
        if (!json_is_object(eo))
            return bad(c, p, "an object", eo);
        rep_epoch *ep = &x->hist[k];
        long epoch = 0;
        ep->loss = ep->accuracy = ep->val_loss = ep->val_accuracy = ep->seconds = NAN;
        /* A diverged epoch's NaN loss cannot be stored in JSON: the key is
         * left out, and the chart leaves a gap. */
        if ((rc = get_count(c, eo, p, "epoch", 0, &epoch)) ||
            (rc = get_num(c, eo, p, "loss", 1, &ep->loss)) ||
            (rc = get_num(c, eo, p, "accuracy", 1, &ep->accuracy)) ||
            (rc = get_num(c, eo, p, "val_loss", 1, &ep->val_loss)) ||
            (rc = get_num(c, eo, p, "val_accuracy", 1, &ep->val_accuracy)) ||
            (rc = get_num(c, eo, p, "seconds", 1, &ep->seconds)))
            return rc;
        ep->epoch = (double)epoch;
    }
    x->n_hist = (int)n;
    return 0;
}

static int load_confusion(chk *c, json_t *t, const char *tp, int nc, rep_trial *x)
{
    char p[256];
    json_t *cm = NULL;
    int rc = get_arr(c, t, tp, "confusion", &cm);
    if (rc)
        return rc;
    if (json_array_size(cm) == 0) /* not recorded */
        return 0;
    snprintf(p, sizeof p, "%s.confusion", tp);
    if (json_array_size(cm) != (size_t)nc)
        return tl_errf(c->e, TL_EFORMAT, "%s: %s: expected %d rows (one per class), got %zu",
                       c->file, p, nc, json_array_size(cm));
    if (!(x->confusion = calloc((size_t)nc * (size_t)nc, sizeof *x->confusion)))
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    for (int a = 0; a < nc; a++) {
        json_t *row = json_array_get(cm, (size_t)a);
        snprintf(p, sizeof p, "%s.confusion[%d]", tp, a);
        if (!json_is_array(row) || json_array_size(row) != (size_t)nc)
            return tl_errf(c->e, TL_EFORMAT, "%s: %s: expected an array of %d counts", c->file,
                           p, nc);
        for (int b = 0; b < nc; b++) {
            json_t *v = json_array_get(row, (size_t)b);
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                snprintf(p, sizeof p, "%s.confusion[%d][%d]", tp, a, b);
                return bad(c, p, "an integer >= 0", v);
            }
            x->confusion[(size_t)a * (size_t)nc + (size_t)b] = (long)json_integer_value(v);
        }
    }
    return 0;
}

/* The search's per-trial fields: absent in results.json written before
 * them; a rung indexes search.rungs, so it must be one of them. */
static int load_trial_search(chk *c, const rep_results *r, json_t *t, const char *tp,
                             rep_trial *x)
{
    long rung = -1;
    int rc;
    x->epochs_done = -1;
    x->task_seconds = x->weight_decay = x->momentum = x->label_smoothing = NAN;
    if ((rc = get_count(c, t, tp, "rung", NULLABLE, &rung)) ||
        (rc = get_count(c, t, tp, "epochs_done", NULLABLE, &x->epochs_done)) ||
        (rc = get_str(c, t, tp, "stop_reason", NULLABLE, &x->stop_reason)) ||
        (rc = get_count(c, t, tp, "stopped_epoch", NULLABLE, &x->stopped_epoch)) ||
        (rc = get_num(c, t, tp, "task_seconds", NULLABLE, &x->task_seconds)) ||
        (rc = get_num(c, t, tp, "weight_decay", NULLABLE, &x->weight_decay)) ||
        (rc = get_num(c, t, tp, "momentum", NULLABLE, &x->momentum)) ||
        (rc = get_num(c, t, tp, "label_smoothing", NULLABLE, &x->label_smoothing)))
        return rc;
    if (rung >= r->search.n_rungs)
        return tl_errf(c->e, TL_EFORMAT, "%s: %s.rung: expected a rung below %d (search.rungs), got %ld",
                       c->file, tp, r->search.n_rungs, rung);
    x->rung = (int)rung;
    return 0;
}

static int load_trial(chk *c, rep_results *r, json_t *t, size_t k, rep_trial *x)
{
    char tp[64];
    snprintf(tp, sizeof tp, "trials[%zu]", k);
    if (!json_is_object(t))
        return bad(c, tp, "an object", t);
    int rc;
    json_t *rank = json_object_get(t, "rank"), *fc = json_object_get(t, "feature_cache");
    json_t *index = json_object_get(t, "index");
    x->index = json_is_integer(index) ? (int)json_integer_value(index) : -1;
    x->metric = x->val_accuracy = x->val_loss = x->accuracy = x->loss = NAN;
    x->eval_accuracy = x->eval_loss = x->seconds = NAN;
    if ((rc = get_str(c, t, tp, "id", 0, &x->id)) ||
        (rc = get_str(c, t, tp, "status", 0, &x->status)) ||
        (rc = get_str(c, t, tp, "backbone", 0, &x->backbone)) ||
        (rc = get_str(c, t, tp, "mode", 0, &x->mode)) ||
        (rc = get_num(c, t, tp, "learning_rate", 0, &x->learning_rate)) ||
        (rc = get_str(c, t, tp, "optimizer", 0, &x->optimizer)) ||
        (rc = get_count(c, t, tp, "batch_size", 0, &x->batch_size)) ||
        (rc = get_count(c, t, tp, "epochs", 0, &x->epochs)) ||
        (rc = get_str(c, t, tp, "head", 1, &x->head)) ||
        (rc = get_str(c, t, tp, "augment", 1, &x->augment)) ||
        (rc = get_count(c, t, tp, "image_size", 1, &x->image_size)) ||
        (rc = get_str(c, t, tp, "error", 1, &x->error)))
        return rc;
    if (fc && !json_is_boolean(fc)) {
        char p[96];
        return bad(c, join(p, sizeof p, tp, "feature_cache"), "a boolean", fc);
    }
    x->feature_cache = json_is_true(fc);
    x->done = strcmp(x->status, "done") == 0;
    if (rank && !json_is_null(rank)) {
        long rk = 0;
        if ((rc = get_count(c, t, tp, "rank", 0, &rk)))
            return rc;
        x->rank = (int)(rk > 1000000 ? 1000000 : rk);
    }
    if (x->done) {
        /* metrics: NaN ones are absent (JSON cannot hold NaN) */
        if ((rc = get_num(c, t, tp, r->metric, 1, &x->metric)) ||
            (rc = get_count(c, t, tp, "best_epoch", 0, &x->best_epoch)) ||
            (rc = get_num(c, t, tp, "val_accuracy", 1, &x->val_accuracy)) ||
            (rc = get_num(c, t, tp, "val_loss", 1, &x->val_loss)) ||
            (rc = get_num(c, t, tp, "accuracy", 1, &x->accuracy)) ||
            (rc = get_num(c, t, tp, "loss", 1, &x->loss)) ||
            (rc = get_str(c, t, tp, "eval_split", 1, &x->eval_split)) ||
            (rc = get_num(c, t, tp, "eval_accuracy", 1, &x->eval_accuracy)) ||
            (rc = get_num(c, t, tp, "eval_loss", 1, &x->eval_loss)) ||
            (rc = get_num(c, t, tp, "seconds", 0, &x->seconds)) ||
            (rc = load_confusion(c, t, tp, r->n_classes, x)))
            return rc;
    }
    if ((rc = load_trial_search(c, r, t, tp, x)))
        return rc;
    return load_history(c, t, tp, x);
}

/* search.sampled.AXIS: {dist, low, high}, a range the axis was drawn from */
static int load_sampled_axis(chk *c, json_t *o, const char *p, rep_sampled *x)
{
    static const char *const dists[] = {"uniform", "log_uniform", "int_uniform"};
    const char *dist;
    int rc;
    if (!json_is_object(o))
        return bad(c, p, "an object", o);
    if ((rc = get_str(c, o, p, "dist", 0, &dist)) || (rc = get_num(c, o, p, "low", 0, &x->low)) ||
        (rc = get_num(c, o, p, "high", 0, &x->high)))
        return rc;
    int d = 0;
    while (d < 3 && strcmp(dists[d], dist) != 0)
        d++;
    if (d == 3)
        return tl_errf(c->e, TL_EFORMAT,
                       "%s: %s.dist: expected uniform, log_uniform or int_uniform, got \"%s\"",
                       c->file, p, dist);
    x->dist = (rep_dist_kind)d;
    if (!(x->low < x->high) || (x->dist == REP_DIST_LOG_UNIFORM && !(x->low > 0)))
        return tl_errf(c->e, TL_EFORMAT, "%s: %s: expected %slow < high, got [%g, %g]", c->file, p,
                       x->dist == REP_DIST_LOG_UNIFORM ? "0 < " : "", x->low, x->high);
    return 0;
}

/* search.sampled, in the axes' order; a key that is no axis is an error */
static int load_sampled(chk *c, json_t *so, rep_search *s)
{
    json_t *sm = json_object_get(so, "sampled");
    if (absent(sm, NULLABLE))
        return 0;
    if (!json_is_object(sm))
        return bad(c, "search.sampled", "an object", sm);
    for (int a = 0; a < REP_N_AXES; a++) {
        char p[96];
        json_t *o = json_object_get(sm, rep_axis_name((rep_axis_kind)a));
        if (!o)
            continue;
        snprintf(p, sizeof p, "search.sampled.%s", rep_axis_name((rep_axis_kind)a));
        rep_sampled *x = &s->sampled[s->n_sampled];
        x->axis = (rep_axis_kind)a;
        int rc = load_sampled_axis(c, o, p, x);
        if (rc)
            return rc;
        s->n_sampled++;
    }
    if (json_object_size(sm) != (size_t)s->n_sampled)
        return tl_errf(c->e, TL_EFORMAT, "%s: search.sampled: expected only learning_rate, "
                       "batch_size, weight_decay, momentum or label_smoothing", c->file);
    return 0;
}

/* search.rungs: each rung's epochs, ascending; an empty list without rungs */
static int load_rungs(chk *c, json_t *so, rep_search *s)
{
    json_t *ru;
    int rc = get_arr(c, so, "search", "rungs", &ru);
    if (rc)
        return rc;
    size_t n = json_array_size(ru);
    if (!(s->rungs = items_alloc(c, "search.rungs", n, 64, sizeof *s->rungs, &rc)) && rc)
        return rc;
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(ru, k);
        char p[64];
        snprintf(p, sizeof p, "search.rungs[%zu]", k);
        long prev = k ? s->rungs[k - 1] : 0;
        if (!json_is_integer(v) || json_integer_value(v) <= prev)
            return bad(c, p, k ? "an integer above the rung before" : "an integer >= 1", v);
        s->rungs[k] = (long)json_integer_value(v);
        s->n_rungs = (int)k + 1;
    }
    return 0;
}

/* The search and the workers' timings: results.json before them lacks them. */
static int load_search(chk *c, json_t *root, rep_results *r)
{
    rep_search *s = &r->search;
    json_t *so = json_object_get(root, "search");
    int rc;
    r->busy_share = NAN;
    if ((rc = get_count(c, root, "", "workers", NULLABLE, &r->workers)) ||
        (rc = get_num(c, root, "", "busy_share", NULLABLE, &r->busy_share)))
        return rc;
    if (absent(so, NULLABLE))
        return 0;
    if (!json_is_object(so))
        return bad(c, "search", "an object", so);
    s->seed = -1;
    if ((rc = get_str(c, so, "search", "method", 0, &s->method)) ||
        (rc = get_count(c, so, "search", "trials", OPT, &s->trials)) ||
        (rc = get_count(c, so, "search", "seed", NULLABLE, &s->seed)) ||
        (rc = get_count(c, so, "search", "min_epochs", NULLABLE, &s->min_epochs)) ||
        (rc = get_count(c, so, "search", "reduction_factor", NULLABLE, &s->reduction_factor)) ||
        (rc = load_rungs(c, so, s)))
        return rc;
    return load_sampled(c, so, s);
}

static int load(chk *c, json_t *root, rep_results *r)
{
    int rc;
    json_t *sel = NULL, *best = NULL, *cls = NULL, *ds = NULL, *fe = NULL, *tr = NULL, *bi = NULL;
    if (!json_is_object(root))
        return tl_errf(c->e, TL_EFORMAT, "%s: expected an object at the top, got %s", c->file,
                       type_name(root));
    r->wall_seconds = NAN;
    r->best = -1;
    if ((rc = get_str(c, root, "", "sweep", 0, &r->sweep)) ||
        (rc = get_obj(c, root, "", "select", &sel)) ||
        (rc = get_str(c, sel, "select", "metric", 0, &r->metric)) ||
        (rc = get_str(c, sel, "select", "goal", 0, &r->goal)) ||
        (rc = get_str(c, root, "", "state", 0, &r->state)) ||
        (rc = get_str(c, root, "", "written", 1, &r->written)) ||
        (rc = get_count(c, root, "", "runs", 1, &r->runs)) ||
        (rc = get_num(c, root, "", "wall_seconds", 1, &r->wall_seconds)) ||
        (rc = get_arr(c, root, "", "classes", &cls)) ||
        (rc = get_obj(c, root, "", "dataset", &ds)) ||
        (rc = get_count(c, ds, "dataset", "images", 0, &r->images)) ||
        (rc = get_count(c, ds, "dataset", "train", 0, &r->train)) ||
        (rc = get_count(c, ds, "dataset", "val", 0, &r->val)) ||
        (rc = get_count(c, ds, "dataset", "test", 0, &r->test)) ||
        (rc = get_arr(c, root, "", "feature_caches", &fe)) ||
        (rc = get_arr(c, root, "", "trials", &tr)) ||
        (rc = get_arr(c, root, "", "bad_images", &bi)))
        return rc;
    if (strcmp(r->goal, "max") != 0 && strcmp(r->goal, "min") != 0)
        return tl_errf(c->e, TL_EFORMAT, "%s: select.goal: expected \"max\" or \"min\", got \"%s\"",
                       c->file, r->goal);
    r->goal_max = strcmp(r->goal, "max") == 0;
    best = json_object_get(root, "best");
    if (!best)
        return bad(c, "best", "an object or null", NULL);
    if (!json_is_null(best)) {
        if (!json_is_object(best))
            return bad(c, "best", "an object or null", best);
        if ((rc = get_str(c, best, "best", "trial", 0, &r->best_id)) ||
            (rc = get_num(c, best, "best", "value", 1, &r->best_value)))
            return rc;
    }

    size_t n = json_array_size(cls);
    if (!(r->classes = items_alloc(c, "classes", n, 100000, sizeof *r->classes, &rc)) && rc)
        return rc;
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(cls, k);
        char p[64];
        snprintf(p, sizeof p, "classes[%zu]", k);
        if (!json_is_string(v))
            return bad(c, p, "a string", v);
        r->classes[k] = json_string_value(v);
    }
    r->n_classes = (int)n;

    n = json_array_size(fe);
    if (n && !(r->caches = calloc(n, sizeof *r->caches)))
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    for (size_t k = 0; k < n; k++) {
        json_t *o = json_array_get(fe, k);
        rep_cache *x = &r->caches[k];
        char p[64];
        snprintf(p, sizeof p, "feature_caches[%zu]", k);
        if (!json_is_object(o))
            return bad(c, p, "an object", o);
        x->seconds = NAN;
        if ((rc = get_str(c, o, p, "key", 0, &x->key)) ||
            (rc = get_str(c, o, p, "text", 0, &x->text)) ||
            (rc = get_str(c, o, p, "label", 1, &x->label)) ||
            (rc = get_count(c, o, p, "trials", 0, &x->trials)) ||
            (rc = get_count(c, o, p, "extractions", 0, &x->extractions)) ||
            (rc = get_count(c, o, p, "forward_images", 0, &x->forward_images)) ||
            (rc = get_num(c, o, p, "seconds", 1, &x->seconds)))
            return rc;
        r->n_caches = (int)k + 1;
    }

    if ((rc = load_search(c, root, r)))
        return rc;
    n = json_array_size(tr);
    if (!(r->trials = items_alloc(c, "trials", n, 1000000, sizeof *r->trials, &rc)) && rc)
        return rc;
    for (size_t k = 0; k < n; k++) {
        r->n_trials = (int)k + 1; /* so results_free sees a half-loaded trial */
        if ((rc = load_trial(c, r, json_array_get(tr, k), k, &r->trials[k])))
            return rc;
        r->trials[k].colour = (int)k;
        if (r->best_id && r->best < 0 && strcmp(r->trials[k].id, r->best_id) == 0)
            r->best = (int)k;
    }

    n = json_array_size(bi);
    if (n && !(r->bad = calloc(n, sizeof *r->bad)))
        return tl_errf(c->e, TL_ENOMEM, "%s: out of memory", c->file);
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(bi, k);
        char p[64];
        snprintf(p, sizeof p, "bad_images[%zu]", k);
        if (!json_is_string(v))
            return bad(c, p, "a string", v);
        r->bad[k] = json_string_value(v);
    }
    r->n_bad = n;
    return 0;
}

int report_write(const char *out_dir, tl_err *e)
{
    char src[4096], dst[4096];
    if ((size_t)snprintf(src, sizeof src, "%s/results.json", out_dir) >= sizeof src ||
        (size_t)snprintf(dst, sizeof dst, "%s/report.html", out_dir) >= sizeof dst)
        return tl_errf(e, TL_EINVAL, "%s: path too long", out_dir);
    json_error_t je;
    json_t *root = json_load_file(src, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 0) /* could not open or read */
            return tl_errf(e, TL_EIO, "%s: %s", src, je.text);
        return tl_errf(e, TL_EFORMAT, "%s:%d:%d: not valid JSON: %s", src, je.line, je.column,
                       je.text);
    }
    rep_results r = {0};
    chk c = {src, e};
    r.file = src;
    int rc = load(&c, root, &r);
    tl_strbuf b = TL_STRBUF_INIT;
    if (!rc) {
        rep_html_page(&b, &r);
        if (b.oom)
            rc = tl_errf(e, TL_ENOMEM, "%s: out of memory", dst);
    }
    if (!rc) {
        tl_atomic_file f = TL_ATOMIC_FILE_INIT;
        rc = tl_atomic_open(&f, dst, e);
        if (!rc)
            rc = tl_atomic_write(&f, b.s, b.len, e);
        if (!rc)
            rc = tl_atomic_commit(&f, e);
        tl_atomic_abort(&f);
    }
    tl_strbuf_free(&b);
    results_free(&r);
    json_decref(root);
    return rc;
}
