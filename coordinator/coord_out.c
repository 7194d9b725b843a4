/* What the coordinator shows and leaves behind: the live progress line,
 * the leaderboard, results.csv and results.json. */
#include "coordinator/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/base/clock.h"
#include "common/base/fileio.h"

const char *coord__utc_iso(uint64_t unix_ms, char *buf, size_t n)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (!unix_ms || !gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, n, "-");
    return buf;
}

int coord_count(const coord *c, ctrial_state st)
{
    int n = 0;
    for (size_t i = 0; i < c->s->n_trials; i++)
        n += c->trials[i].st == st;
    return n;
}

void coord__fmt_duration(double s, char *buf, size_t n)
{
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* Work in epoch units: an epoch through the backbone counts 1, an epoch of
 * a head on cached features a hundredth, a feature extraction one. */
static void work_units(const coord *c, double *done, double *total)
{
    *done = *total = 0;
    for (size_t i = 0; i < c->s->n_trials; i++) {
        const sweep_trial *st = &c->s->trials[i];
        const ctrial *t = &c->trials[i];
        if (t->st == TR_OTHER)
            continue;
        double w = sweep_trial_uses_cache(st) ? 0.01 : 1.0;
        *total += w * st->epochs;
        double d = t->st == TR_DONE || t->st == TR_FINISHING ? st->epochs : t->epochs_done;
        if (t->st == TR_RUNNING && t->steps)
            d += (double)t->step / (double)t->steps;
        *done += w * (d < st->epochs ? d : st->epochs);
    }
    for (int g = 0; g < c->s->n_cache_groups; g++) {
        const cgroup *cg = &c->groups[g];
        if (cg->state == CG_NONE || (cg->state == CG_READY && !cg->n_shards))
            continue;
        *total += 1;
        *done += cg->n_shards ? (double)cg->shards_done / cg->n_shards : 1;
    }
}

void coord_progress(coord *c, double now)
{
    if (c->o->quiet || c->phase == COORD_CLOSING)
        return;
    /* a terminal gets a live line; a log file a line every 30 s */
    if (!c->progress.tty && now - c->progress.at < 30)
        return;
    c->progress.at = now;
    int done = coord_count(c, TR_DONE) + coord_count(c, TR_FINISHING);
    int running = coord_count(c, TR_RUNNING), failed = coord_count(c, TR_FAILED);
    int queued = coord_count(c, TR_PENDING);
    double wd, wt;
    work_units(c, &wd, &wt);
    double el = now - c->t0;
    char eta[32], elapsed[32];
    coord__fmt_duration(wd > 0 ? el * (wt - wd) / wd : -1, eta, sizeof eta);
    coord__fmt_duration(el, elapsed, sizeof elapsed);
    char best[200] = "";
    if (c->best >= 0)
        snprintf(best, sizeof best, "  best %s %.4f (%s)", sweep_metric_name(c->s->metric),
                 c->trials[c->best].res->best_value, c->s->trials[c->best].id);
    char extracting[64] = "";
    for (int g = 0; g < c->s->n_cache_groups; g++)
        if (c->groups[g].state == CG_EXTRACTING)
            snprintf(extracting, sizeof extracting, "  features %zu/%zu shards",
                     c->groups[g].shards_done, c->groups[g].n_shards);
    char line[512];
    snprintf(line, sizeof line, "[%s] trials %d/%d done, %d running, %d queued%s%s%s  ETA %s",
             elapsed, done, c->n_mine, running, queued,
             failed ? "  (failed: see above)" : "", extracting, best, eta);
    if (c->progress.tty) {
        fprintf(stderr, "\r\033[K%s", line);
        c->progress.shown = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void coord_progress_clear(coord *c)
{
    if (c->progress.shown) {
        fputs("\r\033[K", stderr);
        c->progress.shown = 0;
    }
}

/* Finished trials, best first (the order of coord_better); failed ones after. */
static int *ranking(const coord *c, int *n_out)
{
    int n = 0;
    int *v = malloc((c->s->n_trials ? c->s->n_trials : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < c->s->n_trials; i++)
        if (c->trials[i].st == TR_DONE)
            v[n++] = (int)i;
    /* insertion sort: sweeps are small and the comparison is not a plain key */
    for (int i = 1; i < n; i++) {
        int x = v[i], j = i - 1;
        while (j >= 0 && coord_better(c, x, v[j])) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
    *n_out = n;
    return v;
}

/* Written mid-run (coord_live.c) a trial under way is running; at the end
 * (or by merge), interrupted. */
static const char *status_name(const coord *c, ctrial_state st)
{
    switch (st) {
    case TR_DONE: return "done";
    case TR_FAILED: return "failed";
    case TR_RUNNING:
    case TR_FINISHING: return c->live.mid_run ? "running" : "interrupted";
    default: return "pending";
    }
}

void coord_leaderboard(coord *c)
{
    int n = 0;
    int *v = ranking(c, &n);
    if (!v || !n) {
        free(v);
        coord_log(c, "leaderboard: no trial finished");
        return;
    }
    int w = 5, mw = 4;
    for (int k = 0; k < n; k++) {
        char mode[64];
        sweep_mode_str(&c->s->trials[v[k]].mode, mode, sizeof mode);
        int l = (int)strlen(c->s->trials[v[k]].id), ml = (int)strlen(mode);
        w = l > w ? l : w;
        mw = ml > mw ? ml : mw;
    }
    const char *m = sweep_metric_name(c->s->metric);
    coord_log(c, "\nleaderboard (%s, %s; %d of %d trials)", m, c->s->goal_max ? "max" : "min",
              n, c->n_mine);
    /* why a trial trained no further, when something can stop it early */
    int why = c->srows || c->s->early_stop.enabled;
    coord_log(c, "%4s  %-*s  %-14s  %-*s  %5s  %8s  %8s  %8s  %9s  %8s%s", "rank", w, "trial", m,
              mw, "mode", "epoch", "val_acc", "val_loss", "train_acc", "eval_acc", "time",
              why ? "  stopped" : "");
    for (int k = 0; k < n; k++) {
        const sweep_trial *st = &c->s->trials[v[k]];
        const Tlsweep__TrialResult *r = c->trials[v[k]].res;
        char mode[64], tm[32], ev[32], stop[32] = "";
        sweep_mode_str(&st->mode, mode, sizeof mode);
        /* every task of the trial: its rungs add up */
        double secs = c->trials[v[k]].task_seconds;
        coord__fmt_duration(secs > 0 ? secs : r->seconds, tm, sizeof tm);
        if (r->eval_split && r->eval_split[0])
            snprintf(ev, sizeof ev, "%.4f %s", r->eval_accuracy, r->eval_split);
        else
            snprintf(ev, sizeof ev, "-");
        const char *reason = coord_stop_reason(c, v[k]);
        if (why && !strcmp(reason, "rung"))
            snprintf(stop, sizeof stop, "  at rung %d", coord_rung_reached(c, v[k]));
        else if (why && r->stopped_epoch)
            snprintf(stop, sizeof stop, "  early, epoch %u", r->stopped_epoch);
        else if (why)
            snprintf(stop, sizeof stop, "  -");
        coord_log(c, "%4d  %-*s  %-14.4f  %-*s  %2u/%-2u  %8.4f  %8.4f  %9.4f  %9s  %8s%s",
                  k + 1, w, st->id, r->best_value, mw, mode, r->best_epoch, r->epochs_done,
                  r->val_accuracy, r->val_loss, r->accuracy, ev, tm, stop);
    }
    coord_log(c, "\nbest: %s -> %s/best.tlm", c->s->trials[v[0]].id, c->out);
    for (int g = 0; g < c->s->n_cache_groups; g++) {
        const cgroup *cg = &c->groups[g];
        if (cg->extractions)
            coord_log(c, "features %s: %.2f backbone passes per image over %d trial%s",
                      coord_group_label(c, g),
                      c->ix.n_items ? (double)cg->forward_images / c->ix.n_items : 0,
                      c->s->cache_groups[g].n_trials,
                      c->s->cache_groups[g].n_trials == 1 ? "" : "s");
    }
    if (c->n_bad)
        coord_log(c, "bad images skipped: %zu (listed in %s/results.json)", c->n_bad, c->out);
    free(v);
}

/* ---- results.csv / results.json ------------------------------------------------------- */

int coord__write_text(const char *path, const char *text, size_t n, tl_err *e)
{
    tl_atomic_file f = TL_ATOMIC_FILE_INIT;
    int rc = tl_atomic_open(&f, path, e);
    if (!rc)
        rc = tl_atomic_write(&f, text, n, e);
    if (!rc)
        rc = tl_atomic_commit(&f, e);
    tl_atomic_abort(&f);
    return rc;
}

/* The engine backend trial i was asked for: as its worker resolved it (in
 * its result), else the file's engine:, else unknown (NULL: a trial that
 * has not run, or a result journaled before results said). */
static const char *trial_engine(const coord *c, int i)
{
    const Tlsweep__TrialResult *r = c->trials[i].res;
    if (r && r->engine && r->engine[0])
        return r->engine;
    return c->s->engine_set ? sweep_engine_name(c->s->engine) : NULL;
}

/* The trial's head and augmentation as results.csv/json name them. */
static void trial_net_text(const sweep *s, const sweep_trial *t, char *head, size_t nh, char *aug,
                           size_t na)
{
    sweep_head_op ops[SWEEP_MAX_HEAD_OPS];
    sweep_head_str(ops, sweep_trial_head(s, t, ops), head, nh);
    sweep_augment_str(s, t, aug, na);
}

/* Ranks as a JSON list; null when not recorded. */
static json_t *ranks_json(const int32_t *r, int n)
{
    if (!r || n < 1)
        return json_null();
    json_t *a = json_array();
    for (int k = 0; k < n; k++)
        json_array_append_new(a, json_integer(r[k]));
    return a;
}

/* The group of trial i's last task: its result's, else the one it was
 * given in this run, else the ranks of its last epoch; NULL: not known. */
static const int32_t *trial_ranks(const coord *c, int i, int *n)
{
    const ctrial *t = &c->trials[i];
    if (t->res && t->res->n_ranks) {
        *n = (int)t->res->n_ranks;
        return t->res->ranks;
    }
    if (t->n_group) {
        *n = t->n_group;
        return t->group;
    }
    for (int k = t->n_hist - 1; k >= 0; k--)
        if (t->hist[k].seen) {
            *n = t->hist[k].n_ranks;
            return t->hist[k].ranks;
        }
    *n = 0;
    return NULL;
}

/* How many ranks trained trial i's last epoch: one for an epoch recorded
 * before groups existed; 0: no epoch yet. */
static int last_epoch_ranks(const coord *c, int i)
{
    const ctrial *t = &c->trials[i];
    for (int k = t->n_hist - 1; k >= 0; k--)
        if (t->hist[k].seen)
            return t->hist[k].n_ranks > 0 ? t->hist[k].n_ranks : 1;
    return 0;
}

static json_t *trial_json(const coord *c, int i, int rank)
{
    const sweep_trial *st = &c->s->trials[i];
    const ctrial *t = &c->trials[i];
    char mode[64];
    sweep_mode_str(&st->mode, mode, sizeof mode);
    json_t *o = json_object();
    json_object_set_new(o, "rank", rank > 0 ? json_integer(rank) : json_null());
    json_object_set_new(o, "id", json_string(st->id));
    json_object_set_new(o, "index", json_integer(st->index));
    json_object_set_new(o, "status", json_string(status_name(c, t->st)));
    json_object_set_new(o, "backbone", json_string(st->backbone));
    json_object_set_new(o, "mode", json_string(mode));
    json_object_set_new(o, "learning_rate", json_real(st->learning_rate));
    json_object_set_new(o, "optimizer", json_string(sweep_optimizer_name(st->optimizer)));
    json_object_set_new(o, "batch_size", json_integer(st->batch_size));
    /* sampled or listed; null when the file gives none (0 / the optimizer's default) */
    json_object_set_new(o, "weight_decay", c->s->n_weight_decays ? json_real(st->weight_decay) : json_null());
    json_object_set_new(o, "momentum", c->s->n_momenta ? json_real(st->momentum) : json_null());
    json_object_set_new(o, "label_smoothing", json_real(st->label_smoothing));
    char head[512], aug[160];
    trial_net_text(c->s, st, head, sizeof head, aug, sizeof aug);
    json_object_set_new(o, "head", json_string(head));
    json_object_set_new(o, "augment", json_string(aug));
    json_object_set_new(o, "image_size", json_integer(st->image_size));
    json_object_set_new(o, "precision", json_string(sweep_precision_name(st->precision)));
    const char *engine = trial_engine(c, i);
    json_object_set_new(o, "engine", engine ? json_string(engine) : json_null());
    json_object_set_new(o, "epochs", json_integer(st->epochs));
    json_object_set_new(o, "feature_cache", json_boolean(sweep_trial_uses_cache(st)));
    int n_ranks;
    const int32_t *ranks = trial_ranks(c, i, &n_ranks);
    json_object_set_new(o, "ranks", ranks_json(ranks, n_ranks));
    const Tlsweep__TrialResult *r = t->res;
    if (r && t->st == TR_DONE) {
        json_object_set_new(o, sweep_metric_name(c->s->metric), json_real(r->best_value));
        json_object_set_new(o, "best_epoch", json_integer(r->best_epoch));
        /* early_stopping: ended it after stopped_epoch; rung: a rung search
         * did not promote it past the rung it reached; else it ran its epochs */
        const char *why = coord_stop_reason(c, i);
        json_object_set_new(o, "stop_reason", json_string(why));
        uint32_t stopped = coord_stopped_epoch(c, i);
        json_object_set_new(o, "stopped_epoch", stopped ? json_integer(stopped) : json_null());
        json_object_set_new(o, "epochs_done", json_integer(r->epochs_done));
        int rung = coord_rung_reached(c, i);
        json_object_set_new(o, "rung", rung >= 0 ? json_integer(rung) : json_null());
        json_object_set_new(o, "val_accuracy", json_real(r->val_accuracy));
        json_object_set_new(o, "val_loss", json_real(r->val_loss));
        json_object_set_new(o, "accuracy", json_real(r->accuracy));
        json_object_set_new(o, "loss", json_real(r->loss));
        if (r->eval_split && r->eval_split[0]) {
            json_object_set_new(o, "eval_split", json_string(r->eval_split));
            json_object_set_new(o, "eval_accuracy", json_real(r->eval_accuracy));
            json_object_set_new(o, "eval_loss", json_real(r->eval_loss));
        }
        json_object_set_new(o, "seconds", json_real(r->seconds));
        /* every task of the trial (its rungs, its runs), for busy_share */
        json_object_set_new(o, "task_seconds", json_real(t->task_seconds));
        json_object_set_new(o, "backbone_images", json_integer((json_int_t)r->backbone_images));
        json_t *cm = json_array();
        for (uint32_t a = 0; a < r->num_classes && r->n_confusion; a++) {
            json_t *row = json_array();
            for (uint32_t b = 0; b < r->num_classes; b++)
                json_array_append_new(row, json_integer((json_int_t)r->confusion[a * r->num_classes + b]));
            json_array_append_new(cm, row);
        }
        json_object_set_new(o, "confusion", cm);
    } else if (r && r->message && r->message[0]) {
        json_object_set_new(o, "error", json_string(r->message));
    }
    json_t *h = json_array();
    for (int k = 0; k < t->n_hist; k++) {
        const cepoch *x = &t->hist[k];
        if (!x->seen)
            continue;
        json_t *eo = json_object();
        json_object_set_new(eo, "epoch", json_integer(k + 1));
        json_object_set_new(eo, "loss", json_real(x->loss));
        json_object_set_new(eo, "accuracy", json_real(x->accuracy));
        json_object_set_new(eo, "val_loss", json_real(x->val_loss));
        json_object_set_new(eo, "val_accuracy", json_real(x->val_accuracy));
        json_object_set_new(eo, "seconds", json_real(x->seconds));
        json_object_set_new(eo, "ranks", ranks_json(x->ranks, x->n_ranks));
        json_object_set_new(eo, "comm_seconds", x->ranks ? json_real(x->comm_seconds) : json_null());
        json_array_append_new(h, eo);
    }
    json_object_set_new(o, "history", h);
    return o;
}

/* results.json's text, newline-terminated (NULL: out of memory) */
static char *results_json(coord *c, const int *v, int n)
{
    json_t *root = json_object();
    json_object_set_new(root, "sweep", json_string(c->s->name));
    json_object_set_new(root, "sweep_file", json_string(c->s->file));
    json_t *sel = json_object();
    json_object_set_new(sel, "metric", json_string(sweep_metric_name(c->s->metric)));
    json_object_set_new(sel, "goal", json_string(c->s->goal_max ? "max" : "min"));
    json_object_set_new(root, "select", sel);
    const char *state = c->live.mid_run                   ? "running"
                        : c->outcome == COORD_FAILED      ? "failed"
                        : c->outcome == COORD_INTERRUPTED ? "interrupted"
                                                          : "finished";
    json_object_set_new(root, "state", json_string(state));
    json_object_set_new(root, "runs", json_integer(c->restarts + 1));
    double wall = tl_now() - c->t0;
    json_object_set_new(root, "wall_seconds", json_real(wall));
    json_object_set_new(root, "search", coord__search_json(c));
    /* how busy the workers were: the tasks that ended with a result (all
     * runs, from the journal) and the extractions, against this run's wall
     * time on every worker; meaningful for a run that was not resumed */
    double busy = 0;
    for (size_t i = 0; i < c->s->n_trials; i++)
        busy += c->trials[i].task_seconds;
    for (int g = 0; g < c->s->n_cache_groups; g++)
        busy += c->groups[g].seconds * c->n_workers;
    json_object_set_new(root, "workers", json_integer(c->n_workers));
    json_object_set_new(root, "busy_seconds", json_real(busy));
    json_object_set_new(root, "busy_share",
                        wall > 0 && c->n_workers > 0 ? json_real(busy / (wall * c->n_workers))
                                                     : json_null());
    char written[32];
    json_object_set_new(root, "written",
                        json_string(coord__utc_iso(tl_unix_ms(), written, sizeof written)));
    if (n > 0) {
        json_t *b = json_object();
        json_object_set_new(b, "trial", json_string(c->s->trials[v[0]].id));
        json_object_set_new(b, "value", json_real(c->trials[v[0]].res->best_value));
        json_object_set_new(b, "model", json_string("best.tlm"));
        json_object_set_new(root, "best", b);
    } else {
        json_object_set_new(root, "best", json_null());
    }
    json_t *cls = json_array();
    for (int k = 0; k < c->ix.n_classes; k++)
        json_array_append_new(cls, json_string(c->ix.classes[k]));
    json_object_set_new(root, "classes", cls);
    json_t *ds = json_object();
    json_object_set_new(ds, "images", json_integer((json_int_t)c->ix.n_items));
    json_object_set_new(ds, "train", json_integer((json_int_t)data_index_count(&c->ix, DATA_TRAIN)));
    json_object_set_new(ds, "val", json_integer((json_int_t)data_index_count(&c->ix, DATA_VAL)));
    json_object_set_new(ds, "test", json_integer((json_int_t)data_index_count(&c->ix, DATA_TEST)));
    json_object_set_new(root, "dataset", ds);
    json_t *fe = json_array();
    for (int g = 0; g < c->s->n_cache_groups; g++) {
        const cgroup *cg = &c->groups[g];
        json_t *o = json_object();
        char key[17];
        snprintf(key, sizeof key, "%016llx", (unsigned long long)cg->key);
        json_object_set_new(o, "key", json_string(key));
        /* text: what the key hashes (as in the cache file); label: what runs */
        json_object_set_new(o, "text", json_string(c->s->cache_groups[g].text));
        json_object_set_new(o, "label", json_string(coord_group_label(c, g)));
        json_object_set_new(o, "trials", json_integer(c->s->cache_groups[g].n_trials));
        json_object_set_new(o, "extractions", json_integer(cg->extractions));
        json_object_set_new(o, "forward_images", json_integer((json_int_t)cg->forward_images));
        json_object_set_new(o, "seconds", json_real(cg->seconds));
        json_object_set_new(o, "passes_per_image",
                            json_real(c->ix.n_items ? (double)cg->forward_images / c->ix.n_items : 0));
        json_array_append_new(fe, o);
    }
    json_object_set_new(root, "feature_caches", fe);
    json_t *tr = json_array();
    for (int k = 0; k < n; k++)
        json_array_append_new(tr, trial_json(c, v[k], k + 1));
    for (size_t i = 0; i < c->s->n_trials; i++)
        if (c->trials[i].st != TR_DONE && c->trials[i].st != TR_OTHER)
            json_array_append_new(tr, trial_json(c, (int)i, 0));
    json_object_set_new(root, "trials", tr);
    json_t *bad = json_array();
    for (size_t k = 0; k < c->n_bad; k++)
        json_array_append_new(bad, json_string(c->bad[k]));
    json_object_set_new(root, "bad_images", bad);
    /* JSON_INDENT's text ends without a newline; the file has one */
    char *dump = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    char *out = dump ? realloc(dump, strlen(dump) + 2) : NULL;
    if (!out) {
        free(dump);
        return NULL;
    }
    strcat(out, "\n");
    return out;
}

char *coord__results_json(coord *c)
{
    int n = 0;
    int *v = ranking(c, &n);
    char *text = v ? results_json(c, v, n) : NULL;
    free(v);
    return text;
}

static int write_json(coord *c, const int *v, int n, tl_err *e)
{
    char *text = results_json(c, v, n);
    if (!text)
        return tl_errf(e, TL_ENOMEM, "results.json: out of memory");
    char p[4096];
    snprintf(p, sizeof p, "%s/results.json", c->out);
    int rc = coord__write_text(p, text, strlen(text), e);
    free(text);
    return rc;
}

/* results.csv's text, ranked as v[0..n), then the trials not done (NULL:
 * out of memory) */
static char *results_csv(coord *c, const int *v, int n, size_t *n_out)
{
    /* a row's head and augment are cut to fit their buffers below */
    size_t cap = 4096 + (640 + 512 + 160) * (c->s->n_trials + 1), len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    /* one column per name: the select metric is named in a column of its
     * own, since it is often one of the metrics after it (val_accuracy) */
    const char *metric = sweep_metric_name(c->s->metric);
    len += (size_t)snprintf(buf + len, cap - len,
                            "rank,trial,status,backbone,mode,learning_rate,optimizer,batch_size,"
                            "precision,engine,epochs,best_epoch,select_metric,select_value,"
                            "val_accuracy,val_loss,accuracy,loss,eval_split,eval_accuracy,"
                            "weight_decay,momentum,label_smoothing,head,augment,image_size,stop_reason,"
                            "stopped_epoch,rung,ranks,seconds\n");
    for (int pass = 0; pass < 2; pass++) {
        size_t count = pass ? c->s->n_trials : (size_t)n;
        for (size_t k = 0; k < count; k++) {
            int i = pass ? (int)k : v[k];
            if (pass && (c->trials[i].st == TR_DONE || c->trials[i].st == TR_OTHER))
                continue;
            const sweep_trial *st = &c->s->trials[i];
            const Tlsweep__TrialResult *r = c->trials[i].st == TR_DONE ? c->trials[i].res : NULL;
            char mode[64];
            sweep_mode_str(&st->mode, mode, sizeof mode);
            for (char *q = mode; *q; q++)
                if (*q == ',')
                    *q = ';';
            char rk[24] = "";
            if (!pass)
                snprintf(rk, sizeof rk, "%zu", k + 1);
            const char *engine = trial_engine(c, i);
            len += (size_t)snprintf(buf + len, cap - len, "%s,%s,%s,%s,%s,%.10g,%s,%d,%s,%s,%d,",
                                    rk, st->id, status_name(c, c->trials[i].st), st->backbone,
                                    mode, st->learning_rate, sweep_optimizer_name(st->optimizer),
                                    st->batch_size, sweep_precision_name(st->precision),
                                    engine ? engine : "", st->epochs);
            if (r)
                len += (size_t)snprintf(buf + len, cap - len,
                                        "%u,%s,%.6f,%.6f,%.6f,%.6f,%.6f,%s,%.6f,",
                                        r->best_epoch, metric, r->best_value, r->val_accuracy,
                                        r->val_loss, r->accuracy, r->loss,
                                        r->eval_split ? r->eval_split : "", r->eval_accuracy);
            else
                len += (size_t)snprintf(buf + len, cap - len, ",%s,,,,,,,,", metric);
            /* empty where results.json has null: no value in the file, or no result yet */
            if (c->s->n_weight_decays)
                len += (size_t)snprintf(buf + len, cap - len, "%.10g", st->weight_decay);
            len += (size_t)snprintf(buf + len, cap - len, ",");
            if (c->s->n_momenta)
                len += (size_t)snprintf(buf + len, cap - len, "%.10g", st->momentum);
            char head[512], aug[160];
            trial_net_text(c->s, st, head, sizeof head, aug, sizeof aug);
            len += (size_t)snprintf(buf + len, cap - len, ",%.10g,%s,%s,%d,", st->label_smoothing,
                                    head, aug, st->image_size);
            const char *why = r ? coord_stop_reason(c, i) : "";
            len += (size_t)snprintf(buf + len, cap - len, "%s,", why);
            if (r && coord_stopped_epoch(c, i))
                len += (size_t)snprintf(buf + len, cap - len, "%u", coord_stopped_epoch(c, i));
            len += (size_t)snprintf(buf + len, cap - len, ",");
            if (r && coord_rung_reached(c, i) >= 0)
                len += (size_t)snprintf(buf + len, cap - len, "%d", coord_rung_reached(c, i));
            len += (size_t)snprintf(buf + len, cap - len, ",");
            if (last_epoch_ranks(c, i))
                len += (size_t)snprintf(buf + len, cap - len, "%d", last_epoch_ranks(c, i));
            len += (size_t)snprintf(buf + len, cap - len, ",");
            if (r)
                len += (size_t)snprintf(buf + len, cap - len, "%.2f", r->seconds);
            len += (size_t)snprintf(buf + len, cap - len, "\n");
        }
    }
    *n_out = len;
    return buf;
}

char *coord__results_csv(coord *c, size_t *n)
{
    int nv = 0;
    int *v = ranking(c, &nv);
    char *text = v ? results_csv(c, v, nv, n) : NULL;
    free(v);
    return text;
}

static int write_csv(coord *c, const int *v, int n, tl_err *e)
{
    size_t len = 0;
    char *text = results_csv(c, v, n, &len);
    if (!text)
        return tl_errf(e, TL_ENOMEM, "results.csv: out of memory");
    char p[4096];
    snprintf(p, sizeof p, "%s/results.csv", c->out);
    int rc = coord__write_text(p, text, len, e);
    free(text);
    return rc;
}

int coord_write_results(coord *c, tl_err *e)
{
    int n = 0;
    int *v = ranking(c, &n);
    if (!v)
        return tl_errf(e, TL_ENOMEM, "results: out of memory");
    int rc = write_csv(c, v, n, e);
    if (!rc)
        rc = write_json(c, v, n, e);
    free(v);
    return rc;
}
