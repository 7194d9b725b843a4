/* The search on the report page (coordinator/report/report_search.c) on a
 * synthetic results.json of an asha sweep: rungs at 1, 3 and 9 epochs, a
 * learning rate drawn log-uniformly from [1e-5, 1e-2], ten trials of which
 * eight finished (three ended at rung 0, two at rung 1, one went on from
 * rung 1 and early stopping ended it at epoch 5, two ran all 9 epochs), one
 * still running and one failed. The Rungs section must count them per rung
 * and list who ended where, the scatter must put one point per finished
 * trial at its place on a log axis, the summary must weigh the epochs
 * trained against every trial to the end; a results.json without the
 * search's fields still renders, and a bad type in them is a one-line
 * error naming the key. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/report/report.h"
#include "report/report_check.h"

typedef struct {
    const char *id, *mode;
    double lr, acc;
    int rung;            /* -1: null */
    int epochs_done;
    const char *why;     /* stop_reason */
    int stopped_epoch;   /* 0: null */
} fixture_trial;

static const fixture_trial done_trials[8] = {
    {"a-lr1e-04", "frozen", 1e-4, 0.90, 2, 9, "epochs", 0},
    {"b-lr3e-04", "fine_tune", 3e-4, 0.85, 2, 9, "epochs", 0},
    {"c-lr1e-03", "frozen", 1e-3, 0.80, 1, 3, "rung", 3},
    {"d-lr2e-05", "fine_tune", 2e-5, 0.75, 1, 5, "early_stopping", 5},
    {"e-lr5e-03", "frozen", 5e-3, 0.70, 1, 3, "rung", 3},
    {"f-lr1e-05", "fine_tune", 1e-5, 0.60, 0, 1, "rung", 1},
    {"g-lr7e-03", "frozen", 7e-3, 0.50, 0, 1, "rung", 1},
    {"h-lr2e-03", "fine_tune", 2e-3, 0.40, 0, 1, "rung", 1},
};

static json_t *base_trial(const char *id, int index, const char *status, const char *mode,
                          double lr)
{
    return json_pack("{s:n, s:s, s:i, s:s, s:s, s:s, s:f, s:s, s:i, s:i, s:b, s:[]}", "rank", "id",
                     id, "index", index, "status", status, "backbone", "mobilenet_v2", "mode",
                     mode, "learning_rate", lr, "optimizer", "adam", "batch_size", 32, "epochs", 9,
                     "feature_cache", 0, "history");
}

static json_t *done_trial(int k)
{
    const fixture_trial *f = &done_trials[k];
    json_t *t = base_trial(f->id, k, "done", f->mode, f->lr);
    json_object_set_new(t, "rank", json_integer(k + 1));
    json_object_set_new(t, "val_accuracy", json_real(f->acc));
    json_object_set_new(t, "best_epoch", json_integer(f->epochs_done));
    json_object_set_new(t, "seconds", json_real(1.5 * f->epochs_done));
    json_object_set_new(t, "confusion", json_array());
    json_object_set_new(t, "rung", f->rung >= 0 ? json_integer(f->rung) : json_null());
    json_object_set_new(t, "epochs_done", json_integer(f->epochs_done));
    json_object_set_new(t, "stop_reason", json_string(f->why));
    json_object_set_new(t, "stopped_epoch",
                        f->stopped_epoch ? json_integer(f->stopped_epoch) : json_null());
    json_object_set_new(t, "task_seconds", json_real(1.6 * f->epochs_done));
    json_object_set_new(t, "weight_decay", json_null());
    json_object_set_new(t, "momentum", json_null());
    json_object_set_new(t, "label_smoothing", json_real(0));
    return t;
}

static json_t *asha_results(void)
{
    json_t *tr = json_array();
    for (int k = 0; k < 8; k++)
        json_array_append_new(tr, done_trial(k));
    json_array_append_new(tr, base_trial("i-lr4e-05", 8, "running", "frozen", 4e-5));
    json_t *failed = base_trial("j-lr9e-03", 9, "failed", "fine_tune", 9e-3);
    json_object_set_new(failed, "error", json_string("loss is NaN"));
    json_array_append_new(tr, failed);
    json_t *search = json_pack("{s:s, s:i, s:i, s:[i,i,i], s:i, s:i, s:{s:{s:s, s:f, s:f}}}",
                               "method", "asha", "trials", 10, "seed", 1, "rungs", 1, 3, 9,
                               "min_epochs", 1, "reduction_factor", 3, "sampled",
                               "learning_rate", "dist", "log_uniform", "low", 1e-5, "high", 1e-2);
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:i, s:f, s:o, s:i, s:f, s:f,"
                     " s:{s:s, s:f}, s:[s, s], s:{s:i, s:i, s:i, s:i}, s:[], s:o, s:[]}",
                     "sweep", "asha-demo", "sweep_file", "s.yaml", "select", "metric",
                     "val_accuracy", "goal", "max", "state", "finished", "runs", 1,
                     "wall_seconds", 40.0, "search", search, "workers", 2, "busy_seconds", 74.4,
                     "busy_share", 0.93, "best", "trial", "a-lr1e-04", "value", 0.90, "classes",
                     "cat", "dog", "dataset", "images", 100, "train", 80, "val", 20, "test", 0,
                     "feature_caches", "trials", tr, "bad_images");
}

static json_t *search_of(json_t *r) { return json_object_get(r, "search"); }
static json_t *trial_of(json_t *r, size_t k)
{
    return json_array_get(json_object_get(r, "trials"), k);
}

/* the page of results.json `root` in a fresh folder `name` */
static char *page_of(const char *name, json_t *root)
{
    const char *dir = tu_tmp(name);
    tl_err e = {0};
    mkdir(dir, 0755);
    put(dir, root);
    assert_int_equal(report_write(dir, &e), 0);
    return html_of(dir);
}

/* The number in attr="..." last before `at` in h. */
static double attr_before(const char *h, const char *at, const char *attr)
{
    size_t n = strlen(attr);
    for (const char *q = at; q >= h; q--)
        if (strncmp(q, attr, n) == 0)
            return strtod(q + n, NULL);
    fail_msg("no %s before %.40s", attr, at);
    return NAN;
}

/* x of the scatter's tick labelled `label`, and of the point of trial `id` */
static double tick_x(const char *chart, const char *label)
{
    char want[64];
    snprintf(want, sizeof want, ">%s</text>", label);
    const char *at = strstr(chart, want);
    assert_non_null(at);
    return attr_before(chart, at, "<text x=\"");
}

static double point_x(const char *chart, const char *id)
{
    char want[96];
    snprintf(want, sizeof want, "<title>%s: ", id);
    const char *at = strstr(chart, want);
    assert_non_null(at);
    return attr_before(chart, at, "cx=\"");
}

static void test_rungs(void **st)
{
    (void)st;
    char *h = page_of("asha", asha_results());
    const char *sec = strstr(h, "<h2>Rungs</h2>");
    assert_non_null(sec);
    /* rung, epochs, reached, went on, ended here */
    assert_non_null(strstr(sec, "<tr><td>0</td><td>1</td><td>8</td><td>5</td><td>3</td>"));
    assert_non_null(strstr(sec, "<tr><td>1</td><td>3</td><td>5</td><td>3</td><td>2</td>"));
    assert_non_null(strstr(sec, "<tr><td>2</td><td>9</td><td>2</td><td>0</td><td>2</td>"));
    /* who ended at rung 0, with the metric there */
    const char *row0 = strstr(sec, "<tr><td>0</td>"), *row1 = strstr(sec, "<tr><td>1</td>");
    const char *f = strstr(sec, "f-lr1e-05 <b>0.6000</b>"), *h0 = strstr(sec, "h-lr2e-03 <b>0.4000</b>");
    assert_true(f && f > row0 && f < row1);
    assert_true(h0 && h0 > row0 && h0 < row1);
    assert_non_null(strstr(sec, "d-lr2e-05 <b>0.7500</b> (early stopping, epoch 5)"));
    assert_non_null(strstr(sec, "8 finished trials (0 did not reach"));
    /* the funnel */
    assert_non_null(strstr(sec, "aria-label=\"Trials per rung\""));
    assert_non_null(strstr(sec, "5 reached &middot; 3 went on &middot; 2 ended here"));
    /* the leaderboard says why each trial stopped */
    assert_non_null(strstr(h, "<th class=\"l\">stopped</th>"));
    assert_non_null(strstr(h, "<td class=\"l\">all 9 epochs</td>"));
    assert_non_null(strstr(h, "<td class=\"l\">rung 0, epoch 1</td>"));
    assert_non_null(strstr(h, "<td class=\"l\">early stopping, epoch 5</td>"));
    assert_non_null(strstr(h, "<td colspan=\"16\">loss is NaN"));
    /* the summary: 9+9+3+5+3+1+1+1 epochs against 10 trials x 9 */
    assert_non_null(strstr(h, "Search: <b>asha</b>, 10 trials drawn with seed 1; rungs at 1, 3, 9"));
    assert_non_null(strstr(h, "Epochs trained: <b>32</b> of 90 for every trial to epoch 9 (36%)"));
    assert_non_null(strstr(h, "Workers: 2, busy 93% of the wall time."));
    assert_null(strstr(h, "<script"));
    free(h);
}

static void test_scatter_log(void **st)
{
    (void)st;
    char *h = page_of("scatter", asha_results());
    const char *chart = strstr(h, "<svg class=\"chart scatter\"");
    assert_non_null(chart);
    assert_non_null(strstr(chart, "val_accuracy against learning_rate (log scale)"));
    /* one point per finished trial, none for the running or failed one */
    assert_int_equal(count(chart, "<circle class=\"pt\""), 8);
    assert_null(strstr(chart, "<title>i-lr4e-05"));
    assert_null(strstr(chart, "<title>j-lr9e-03"));
    /* decades: 1e-4 a third of the way from 1e-5 to 1e-2, 1e-3 two thirds */
    double x5 = tick_x(chart, "1e-5"), x4 = tick_x(chart, "1e-4"), x2 = tick_x(chart, "1e-2");
    assert_true(x2 > x5);
    assert_true(fabs(x4 - (x5 + (x2 - x5) / 3)) < 0.02);
    assert_true(fabs(point_x(chart, "a-lr1e-04") - (x5 + (x2 - x5) / 3)) < 0.02);
    assert_true(fabs(point_x(chart, "f-lr1e-05") - x5) < 0.02);
    /* 3e-4: log10(3) of a decade past 1e-4 */
    assert_true(fabs(point_x(chart, "b-lr3e-04") - (x4 + log10(3) * (x2 - x5) / 3)) < 0.02);
    /* coloured by rung reached: a ran to rung 2 (the third colour), h ended at 0 */
    const char *a = strstr(chart, "<title>a-lr1e-04");
    const char *ha = strstr(chart, "<title>h-lr2e-03");
    assert_true(a && ha);
    assert_non_null(strstr(h, "reached rung 2 (epoch 9)"));
    char fill[32];
    snprintf(fill, sizeof fill, "fill=\"%s\"", "#2ca02c");
    const char *circle = a;
    while (circle > chart && strncmp(circle, "<circle", 7) != 0)
        circle--;
    assert_true(strstr(circle, fill) && strstr(circle, fill) < a);
    circle = ha;
    while (circle > chart && strncmp(circle, "<circle", 7) != 0)
        circle--;
    assert_true(strstr(circle, "fill=\"#1f77b4\"") && strstr(circle, "fill=\"#1f77b4\"") < ha);
    free(h);
}

/* A random search (no rungs) with a uniform momentum: x is linear, the
 * colours are the modes, and no Rungs section. */
static void test_random_linear(void **st)
{
    (void)st;
    json_t *r = asha_results();
    json_t *s = json_object_get(r, "search");
    json_object_set_new(s, "method", json_string("random"));
    json_object_set_new(s, "rungs", json_array());
    json_object_del(s, "min_epochs");
    json_object_del(s, "reduction_factor");
    json_object_set_new(json_object_get(s, "sampled"), "momentum",
                        json_pack("{s:s, s:f, s:f}", "dist", "uniform", "low", 0.5, "high", 0.9));
    json_t *tr = json_object_get(r, "trials");
    for (int k = 0; k < 8; k++) {
        json_t *t = json_array_get(tr, k);
        json_object_set_new(t, "rung", json_null());
        json_object_set_new(t, "momentum", json_real(0.5 + 0.05 * k));
        json_object_set_new(t, "stop_reason", json_string(k == 3 ? "early_stopping" : "epochs"));
    }
    char *h = page_of("random", r);
    assert_null(strstr(h, "<h2>Rungs</h2>"));
    assert_non_null(strstr(h, "Search: <b>random</b>, 10 trials drawn with seed 1. "));
    assert_null(strstr(h, "Epochs trained"));
    /* early stopping alone brings the stopped column */
    assert_non_null(strstr(h, "<td class=\"l\">early stopping, epoch 5</td>"));
    assert_int_equal(count(h, "<svg class=\"chart scatter\""), 2);
    const char *chart = strstr(h, "val_accuracy against momentum</text>");
    assert_non_null(chart);
    double x5 = tick_x(chart, "0.5"), x9 = tick_x(chart, "0.9");
    /* 0.6 a quarter of the way */
    assert_true(fabs(point_x(chart, "c-lr1e-03") - (x5 + (x9 - x5) / 4)) < 0.02);
    /* modes in rank order: frozen first colour, fine_tune second */
    assert_non_null(strstr(h, "background:#1f77b4\"></span>frozen</div>"));
    assert_non_null(strstr(h, "background:#ff7f0e\"></span>fine_tune</div>"));
    free(h);
}

/* Values where a step is below a double's spacing (1e17 + 16): the axes
 * still end, with a bounded number of ticks. */
static void test_huge_values(void **st)
{
    (void)st;
    json_t *r = asha_results();
    json_object_set_new(json_object_get(search_of(r), "sampled"), "momentum",
                        json_pack("{s:s, s:f, s:f}", "dist", "uniform", "low", 1e17, "high",
                                  1e17 + 64));
    for (int k = 0; k < 8; k++) {
        json_object_set_new(trial_of(r, (size_t)k), "val_accuracy", json_real(1e17 + 16 * (k % 2)));
        json_object_set_new(trial_of(r, (size_t)k), "momentum", json_real(1e17));
    }
    char *h = page_of("huge", r);
    assert_int_equal(count(h, "<svg class=\"chart scatter\""), 2);
    assert_true(count(h, "class=\"tick\"") < 200);
    free(h);
}

/* results.json written before the search's fields: no search line, no
 * stopped column, no Rungs, no scatter; the page still renders. */
static void test_older_file(void **st)
{
    (void)st;
    json_t *r = asha_results();
    json_object_del(r, "search");
    json_object_del(r, "workers");
    json_object_del(r, "busy_seconds");
    json_object_del(r, "busy_share");
    static const char *const keys[] = {"rung", "epochs_done", "stop_reason", "stopped_epoch",
                                       "task_seconds", "weight_decay", "momentum",
                                       "label_smoothing"};
    for (size_t k = 0; k < json_array_size(json_object_get(r, "trials")); k++)
        for (size_t j = 0; j < sizeof keys / sizeof *keys; j++)
            json_object_del(json_array_get(json_object_get(r, "trials"), k), keys[j]);
    char *h = page_of("older", r);
    assert_non_null(strstr(h, "<h2>Leaderboard</h2>"));
    assert_non_null(strstr(h, "</html>"));
    assert_null(strstr(h, "id=\"search\""));
    assert_null(strstr(h, ">stopped</th>"));
    assert_null(strstr(h, "<h2>Rungs</h2>"));
    assert_null(strstr(h, "<h2>Sampled axes</h2>"));
    assert_non_null(strstr(h, "<td colspan=\"15\">loss is NaN"));
    free(h);
}

static json_t *lr_range(json_t *r)
{
    return json_object_get(json_object_get(search_of(r), "sampled"), "learning_rate");
}
static void search_string(json_t *r) { json_object_set_new(r, "search", json_string("asha")); }
static void method_drop(json_t *r) { json_object_del(search_of(r), "method"); }
static void rung_string(json_t *r)
{
    json_array_set_new(json_object_get(search_of(r), "rungs"), 1, json_string("3"));
}
static void rungs_descend(json_t *r)
{
    json_array_set_new(json_object_get(search_of(r), "rungs"), 2, json_integer(2));
}
static void dist_unknown(json_t *r) { json_object_set_new(lr_range(r), "dist", json_string("gamma")); }
static void log_low_zero(json_t *r) { json_object_set_new(lr_range(r), "low", json_real(0)); }
static void high_bool(json_t *r) { json_object_set_new(lr_range(r), "high", json_true()); }
static void axis_unknown(json_t *r)
{
    json_object_set_new(json_object_get(search_of(r), "sampled"), "colour", json_object());
}
static void trial_rung_string(json_t *r) { json_object_set_new(trial_of(r, 0), "rung", json_string("2")); }
static void trial_rung_past(json_t *r) { json_object_set_new(trial_of(r, 0), "rung", json_integer(3)); }
static void reason_number(json_t *r) { json_object_set_new(trial_of(r, 2), "stop_reason", json_integer(5)); }
static void done_negative(json_t *r) { json_object_set_new(trial_of(r, 4), "epochs_done", json_integer(-1)); }
static void wd_bool(json_t *r) { json_object_set_new(trial_of(r, 1), "weight_decay", json_true()); }
static void busy_string(json_t *r) { json_object_set_new(r, "busy_share", json_string("93%")); }
static void workers_real(json_t *r) { json_object_set_new(r, "workers", json_real(2.5)); }

static void test_malformed(void **st)
{
    (void)st;
    static const broken_case cases[] = {
        {search_string, ": search: expected an object, got a string", NULL},
        {method_drop, ": search.method: missing", NULL},
        {rung_string, ": search.rungs[1]: expected an integer above the rung before, got a string", NULL},
        {rungs_descend, ": search.rungs[2]: expected an integer above the rung before, got a number", NULL},
        {dist_unknown, ": search.sampled.learning_rate.dist: expected uniform, log_uniform or int_uniform", "gamma"},
        {log_low_zero, ": search.sampled.learning_rate: expected 0 < low < high", NULL},
        {high_bool, ": search.sampled.learning_rate.high: expected a number, got a boolean", NULL},
        {axis_unknown, ": search.sampled: expected only learning_rate", NULL},
        {trial_rung_string, ": trials[0].rung: expected an integer >= 0, got a string", NULL},
        {trial_rung_past, ": trials[0].rung: expected a rung below 3 (search.rungs), got 3", NULL},
        {reason_number, ": trials[2].stop_reason: expected a string, got a number", NULL},
        {done_negative, ": trials[4].epochs_done: expected an integer >= 0, got a number", NULL},
        {wd_bool, ": trials[1].weight_decay: expected a number, got a boolean", NULL},
        {busy_string, ": busy_share: expected a number, got a string", NULL},
        {workers_real, ": workers: expected an integer >= 0, got a number", NULL},
    };
    assert_cases_broken("bad", asha_results, cases, sizeof cases / sizeof *cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rungs),
        cmocka_unit_test(test_scatter_log),
        cmocka_unit_test(test_random_linear),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_older_file),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
