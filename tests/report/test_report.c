/* The report page (coordinator/report*.c) on a synthetic results.json: two
 * backbones, modes and learning rates (given unsorted), two trials in one
 * heat-map cell, a class name and an error that need escaping, a failed
 * trial and bad images. The page must be self-contained (no http), escape
 * every string, draw one <svg> per chart and one heat-map cell per (mode,
 * learning rate) of each backbone, and highlight the best trial. A broken
 * results.json (a missing key, a wrong type, not JSON) gives a one-line
 * error naming the file and the key, and writes no report.html. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/report/report.h"
#include "report/report_check.h"

#define NC 3
static const char *const classes[NC] = {"cat", "<dog & \"co\">", "bird"};

/* A finished trial: metric val_accuracy = acc, a 3-epoch history. */
static json_t *done_trial(int rank, int index, const char *bb, const char *mode, double lr,
                          const char *optim, double acc)
{
    char id[128];
    snprintf(id, sizeof id, "%s-%s-lr%g-%s", bb, mode, lr, optim);
    json_t *t = json_pack("{s:i, s:s, s:i, s:s, s:s, s:s, s:f, s:s, s:i, s:i, s:b}", "rank", rank,
                          "id", id, "index", index, "status", "done", "backbone", bb, "mode",
                          mode, "learning_rate", lr, "optimizer", optim, "batch_size", 16,
                          "epochs", 3, "feature_cache", 1);
    json_object_set_new(t, "val_accuracy", json_real(acc));
    json_object_set_new(t, "best_epoch", json_integer(3));
    json_object_set_new(t, "val_loss", json_real(1.5 - acc));
    json_object_set_new(t, "accuracy", json_real(acc + 0.05));
    json_object_set_new(t, "loss", json_real(1.4 - acc));
    json_object_set_new(t, "eval_split", json_string("test"));
    json_object_set_new(t, "eval_accuracy", json_real(acc - 0.01));
    json_object_set_new(t, "eval_loss", json_real(1.6 - acc));
    json_object_set_new(t, "seconds", json_real(2.5 + index));
    json_object_set_new(t, "backbone_images", json_integer(0));
    json_t *cm = json_array();
    for (int a = 0; a < NC; a++)
        json_array_append_new(cm, json_pack("[i,i,i]", a == 0 ? 8 : 1, a == 1 ? 7 : 1,
                                            a == 2 ? 9 : 0));
    json_object_set_new(t, "confusion", cm);
    json_t *h = json_array();
    for (int k = 1; k <= 3; k++)
        json_array_append_new(h, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "epoch", k, "loss",
                                           2.0 / k, "accuracy", acc * k / 3, "val_loss",
                                           2.2 / k, "val_accuracy", acc * k / 3.2, "seconds",
                                           0.8));
    json_object_set_new(t, "history", h);
    return t;
}

/* The sweep: mobilenet_v2 {frozen, fine_tune_at: 100} x {1e-3, 3e-5, 1e-4}
 * (6 cells, one of them holding an adam and an sgd trial) and resnet50
 * {frozen} x {1e-3, 1e-4} (2 cells, one a failed trial). */
static json_t *results(void)
{
    json_t *tr = json_array();
    json_array_append_new(tr, done_trial(1, 3, "mobilenet_v2", "fine_tune_at: 100", 1e-4, "adam", 0.91));
    json_array_append_new(tr, done_trial(2, 0, "mobilenet_v2", "frozen", 1e-3, "adam", 0.85));
    json_array_append_new(tr, done_trial(3, 1, "mobilenet_v2", "frozen", 3e-5, "adam", 0.60));
    json_array_append_new(tr, done_trial(4, 2, "mobilenet_v2", "frozen", 1e-4, "adam", 0.70));
    json_array_append_new(tr, done_trial(5, 4, "mobilenet_v2", "fine_tune_at: 100", 1e-3, "adam", 0.80));
    json_array_append_new(tr, done_trial(6, 5, "mobilenet_v2", "fine_tune_at: 100", 3e-5, "adam", 0.50));
    json_array_append_new(tr, done_trial(7, 6, "mobilenet_v2", "fine_tune_at: 100", 1e-4, "sgd", 0.40));
    json_array_append_new(tr, done_trial(8, 7, "resnet50", "frozen", 1e-3, "adam", 0.75));
    json_t *failed = json_pack("{s:n, s:s, s:i, s:s, s:s, s:s, s:f, s:s, s:i, s:i, s:b, s:s, s:[]}",
                               "rank", "id", "resnet50-frozen-lr1e-04-adam", "index", 8, "status",
                               "failed", "backbone", "resnet50", "mode", "frozen",
                               "learning_rate", 1e-4, "optimizer", "adam", "batch_size", 16,
                               "epochs", 3, "feature_cache", 1, "error",
                               "loss is NaN <script>alert(1)</script>", "history");
    json_array_append_new(tr, failed);
    json_t *cls = json_array();
    for (int k = 0; k < NC; k++)
        json_array_append_new(cls, json_string(classes[k]));
    return json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:s, s:i, s:f, s:{s:s, s:f, s:s}, s:o,"
        " s:{s:i, s:i, s:i, s:i}, s:[{s:s, s:s, s:i, s:i, s:i, s:f, s:f}], s:o,"
        " s:[s, s]}",
        "sweep", "synthetic <sweep>", "sweep_file", "s.yaml", "select", "metric", "val_accuracy",
        "goal", "max", "state", "finished", "runs", 2, "wall_seconds", 95.5, "best", "trial",
        "mobilenet_v2-fine_tune_at: 100-lr0.0001-adam", "value", 0.91, "model", "best.tlm",
        "classes", cls, "dataset", "images", 120, "train", 80, "val", 20, "test", 20,
        "feature_caches", "key", "00112233aabbccdd", "text", "mobilenet_v2|m.tlm|32|tf", "trials",
        4, "extractions", 1, "forward_images", 120, "seconds", 12.25, "passes_per_image", 1.0,
        "trials", tr, "bad_images", "data/cat/broken&1.jpg", "data/bird/<empty>.png");
}

static void test_page(void **st)
{
    (void)st;
    const char *dir = tu_tmp("good");
    mkdir(dir, 0755);
    put(dir, results());
    tl_err e = {0};
    assert_int_equal(report_write(dir, &e), 0);
    char *h = html_of(dir);
    assert_non_null(strstr(h, "<!DOCTYPE html>"));
    assert_non_null(strstr(h, "</html>"));
    /* self-contained, nothing to run */
    assert_null(strstr(h, "http"));
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<link"));
    assert_null(strstr(h, "<img"));
    /* every string from the file escaped */
    assert_null(strstr(h, "<dog"));
    /* a row, a column, a bar and its tooltip */
    assert_int_equal(count(h, "&lt;dog &amp; &quot;co&quot;&gt;"), 4);
    assert_non_null(strstr(h, "synthetic &lt;sweep&gt;"));
    assert_non_null(strstr(h, "loss is NaN &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(h, "data/cat/broken&amp;1.jpg"));
    assert_non_null(strstr(h, "data/bird/&lt;empty&gt;.png"));
    /* 4 learning curves, per-class accuracy, time per phase */
    assert_int_equal(count(h, "<svg"), 6);
    assert_int_equal(count(h, "</svg>"), 6);
    /* one polyline per trial with a history, per curve chart */
    assert_int_equal(count(h, "<polyline"), 4 * 8);
    /* heat maps: 2 modes x 3 rates + 1 mode x 2 rates, rates sorted */
    assert_int_equal(count(h, "class=\"cell"), 8);
    assert_non_null(strstr(h, "<th>3e-05</th><th>0.0001</th><th>0.001</th>"));
    assert_non_null(strstr(h, "best of 2 (2 done)"));
    assert_non_null(strstr(h, "the cell shows the best of them"));
    assert_non_null(strstr(h, ">failed</span>")); /* resnet50's failed cell */
    /* the best trial: one leaderboard row, one outlined cell */
    assert_int_equal(count(h, "<tr class=\"best\">"), 1);
    assert_non_null(strstr(h, "<tr class=\"best\"><td>1</td>"));
    assert_int_equal(count(h, "class=\"cell best\""), 1);
    assert_non_null(strstr(h, "class=\"cell best\" style=\"background:#08306b"));
    assert_non_null(strstr(h, "(best)</div>"));
    /* confusion matrix of the best trial: 3 x 3 cells, per-class bars */
    assert_int_equal(count(h, "<td class=\"cm\""), NC * NC);
    assert_non_null(strstr(h, "88.9% (8 of 9)"));
    /* time per phase */
    assert_non_null(strstr(h, "features: mobilenet_v2|m.tlm|32|tf"));
    assert_non_null(strstr(h, "training: fine_tune_at: 100"));
    assert_non_null(strstr(h, "95.5 s"));
    free(h);
    char p[600];
    snprintf(p, sizeof p, "%s/report.html", dir);
    assert_false(tu_tmp_left(p));
}

/* No trial finished: best is null, the page still renders. */
/* A cache's label (the preprocessing that runs) names it in the time per
 * phase; its text (what the key hashes) only when there is no label. */
static void test_cache_label(void **st)
{
    (void)st;
    const char *dir = tu_tmp("label");
    mkdir(dir, 0755);
    json_t *root = results();
    json_t *fc = json_array_get(json_object_get(root, "feature_caches"), 0);
    json_object_set_new(fc, "label", json_string("mobilenet_v2|m.tlm|32|unit"));
    put(dir, root);
    tl_err e = {0};
    assert_int_equal(report_write(dir, &e), 0);
    char *h = html_of(dir);
    assert_non_null(strstr(h, "features: mobilenet_v2|m.tlm|32|unit"));
    assert_null(strstr(h, "features: mobilenet_v2|m.tlm|32|tf"));
    free(h);
}

/* The trials' input and head (results.json from grid.image_size,
 * grid.augment, grid.head): a column each in the leaderboard, escaped, and
 * none for a file without them (test_page's has none). */
static void test_net_columns(void **st)
{
    (void)st;
    const char *dir = tu_tmp("net");
    mkdir(dir, 0755);
    json_t *root = results();
    json_t *trials = json_object_get(root, "trials");
    for (size_t i = 0; i < json_array_size(trials); i++) {
        json_t *t = json_array_get(trials, i);
        json_object_set_new(t, "head", json_string(i ? "gap" : "gap > dense 128 relu > dropout 0.2"));
        json_object_set_new(t, "augment", json_string(i ? "none" : "flip <light>"));
        json_object_set_new(t, "image_size", json_integer(i ? 96 : 128));
    }
    put(dir, root);
    tl_err e = {0};
    assert_int_equal(report_write(dir, &e), 0);
    char *h = html_of(dir);
    assert_non_null(strstr(h, "<th>size</th><th class=\"l\">augment</th><th class=\"l\">head</th>"));
    assert_non_null(strstr(h, "<td>128</td><td class=\"l\">flip &lt;light&gt;</td><td class=\"l\">"
                              "gap &gt; dense 128 relu &gt; dropout 0.2</td>"));
    /* the failed trial's row too: its cells stay under their headings */
    assert_int_equal(count(h, "<td>96</td><td class=\"l\">none</td><td class=\"l\">gap</td>"), 8);
    free(h);
    /* a results.json without them: no such columns */
    const char *plain = tu_tmp("good");
    mkdir(plain, 0755);
    put(plain, results());
    assert_int_equal(report_write(plain, &e), 0);
    h = html_of(plain);
    assert_null(strstr(h, "<th>size</th>"));
    free(h);
}

/* Written mid-run: state running, a trial under way with two epochs and no
 * result. The page says the sweep runs and when the results were taken,
 * marks the running trial in the leaderboard and the
 * legend and draws its curves so far, and carries the notice (hidden, its
 * script shows it when the page is old) naming `tlsweep status OUT`; a
 * finished page does none of it. */
static void test_running(void **st)
{
    (void)st;
    const char *dir = tu_tmp("running");
    mkdir(dir, 0755);
    json_t *root = results();
    json_object_set_new(root, "state", json_string("running"));
    json_object_set_new(root, "written", json_string("2026-12-07T15:02:11Z"));
    json_t *failed = json_array_get(json_object_get(root, "trials"), 8);
    json_object_set_new(failed, "status", json_string("running"));
    json_object_del(failed, "error");
    json_t *h = json_object_get(failed, "history");
    for (int k = 1; k <= 2; k++)
        json_array_append_new(h, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "epoch", k, "loss",
                                           1.0 / k, "accuracy", 0.3 * k, "val_loss", 1.1 / k,
                                           "val_accuracy", 0.25 * k, "seconds", 0.5));
    put(dir, root);
    tl_err e = {0};
    assert_int_equal(report_write(dir, &e), 0);
    char *page = html_of(dir);
    assert_int_equal(count(page, "<p class=\"live\">"), 1);
    assert_non_null(strstr(page, "The sweep is still running."));
    assert_null(strstr(page, "http"));
    assert_non_null(strstr(page, " &middot; written 2026-12-07T15:02:11Z</p>"));
    assert_non_null(strstr(page, "<td class=\"l running\">running</td>"));
    assert_non_null(strstr(page, "resnet50-frozen-lr1e-04-adam <span class=\"running\">(running)</span>"));
    /* its curves too: 9 trials with a history, per chart */
    assert_int_equal(count(page, "<polyline"), 4 * 9);
    assert_int_equal(count(page, "<script>"), 1);
    assert_non_null(strstr(page, "<p class=\"live stale\" id=\"stale\" hidden "
                                 "data-written=\"2026-12-07T15:02:11Z\"><b>This page has not "
                                 "been rewritten for <span id=\"stale-min\"></span> min</b>"));
    char want[700];
    snprintf(want, sizeof want, "<code>tlsweep status %s</code> tells.</p>", dir);
    assert_non_null(strstr(page, want));
    assert_non_null(strstr(page, "if (!(s > 180)) return;"));
    free(page);

    put(dir, results());
    assert_int_equal(report_write(dir, &e), 0);
    page = html_of(dir);
    assert_null(strstr(page, "class=\"live\""));
    assert_null(strstr(page, "written"));
    assert_null(strstr(page, "id=\"stale\""));
    assert_null(strstr(page, "<script"));
    free(page);
}

static void test_nothing_done(void **st)
{
    (void)st;
    const char *dir = tu_tmp("empty");
    mkdir(dir, 0755);
    json_t *r = results();
    json_object_set_new(r, "best", json_null());
    json_object_set_new(r, "trials", json_array());
    json_object_set_new(r, "bad_images", json_array());
    json_object_set_new(r, "state", json_string("interrupted"));
    put(dir, r);
    tl_err e = {0};
    assert_int_equal(report_write(dir, &e), 0);
    char *h = html_of(dir);
    assert_non_null(strstr(h, "no trial finished"));
    assert_non_null(strstr(h, "<h2>Bad images skipped (0)</h2>\n<p>none</p>"));
    assert_int_equal(count(h, "class=\"cell"), 0);
    free(h);
}

static void drop_classes(json_t *r) { json_object_del(r, "classes"); }
static void lr_string(json_t *r)
{
    json_object_set_new(json_array_get(json_object_get(r, "trials"), 1), "learning_rate",
                        json_string("0.001"));
}
static void drop_epoch(json_t *r)
{
    json_t *t = json_array_get(json_object_get(r, "trials"), 0);
    json_object_del(json_array_get(json_object_get(t, "history"), 1), "epoch");
}
static void class_number(json_t *r)
{
    json_array_set_new(json_object_get(r, "classes"), 2, json_integer(7));
}
static void confusion_short(json_t *r)
{
    json_t *t = json_array_get(json_object_get(r, "trials"), 2);
    json_array_remove(json_object_get(t, "confusion"), 0);
}
static void head_number(json_t *r)
{
    json_object_set_new(json_array_get(json_object_get(r, "trials"), 3), "head", json_integer(3));
}
static void metric_drop(json_t *r) { json_object_del(json_object_get(r, "select"), "metric"); }
static void trials_object(json_t *r) { json_object_set_new(r, "trials", json_object()); }
static void top_array(json_t *r) { json_object_clear(r); }

static void test_malformed(void **st)
{
    (void)st;
    static const broken_case cases[] = {
        {drop_classes, ": classes: missing", NULL},
        {lr_string, ": trials[1].learning_rate: expected a number, got a string", NULL},
        {drop_epoch, ": trials[0].history[1].epoch: missing", NULL},
        {class_number, ": classes[2]: expected a string, got a number", NULL},
        {confusion_short, "trials[2].confusion", "expected 3 rows"},
        {metric_drop, ": select.metric: missing", NULL},
        {head_number, ": trials[3].head: expected a string, got a number", NULL},
        {trials_object, ": trials: expected an array, got an object", NULL},
        {top_array, ": sweep: missing", NULL},
    };
    assert_cases_broken("bad", results, cases, sizeof cases / sizeof *cases);
    /* not JSON at all, cut short, and no file */
    const char *dir = tu_tmp("notjson");
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/results.json", dir);
    tu_write_file(p, "<html>not json</html>\n", 22);
    assert_broken(dir, "not valid JSON", NULL);
    tu_write_file(p, "{\"sweep\": \"x\", \"select\": {", 26);
    assert_broken(dir, "not valid JSON", NULL);
    unlink(p);
    assert_broken(dir, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_cache_label),
        cmocka_unit_test(test_net_columns),
        cmocka_unit_test(test_running),
        cmocka_unit_test(test_nothing_done),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
