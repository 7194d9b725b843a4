/* The report page, section by section: summary, leaderboard, learning
 * curves, the grid as heat maps, the best trial's confusion matrix and
 * per-class accuracy, bad images, time per phase. Every string that came
 * from results.json goes through rep_esc. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/report/report_int.h"

static const char css[] =
    "body{font:14px/1.45 system-ui,\"DejaVu Sans\",Arial,sans-serif;color:#222;background:#fff;"
    "margin:0}\n"
    "main{width:1100px;margin:0 auto;padding:20px 24px 40px;box-sizing:border-box}\n"
    "h1{font-size:26px;margin:0 0 2px}h2{font-size:19px;margin:30px 0 10px;padding-bottom:4px;"
    "border-bottom:1px solid #ddd}\n"
    "p{margin:6px 0}.muted{color:#777}.note{color:#555;font-size:12.5px}\n"
    ".cards{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin-top:14px}\n"
    ".card{border:1px solid #e2e2e2;border-radius:6px;padding:8px 12px;overflow-wrap:anywhere}\n"
    ".card span{display:block;color:#666;font-size:12px}.card b{font-size:17px}\n"
    ".finished{color:#1a7f37}.failed{color:#c62828}.interrupted,.pending{color:#a15c00}\n"
    ".running{color:#1565c0}.live{background:#dbeafe;border:1px solid #93c5fd;"
    "border-radius:6px;padding:12px 16px;margin:14px 0 0}\n"
    ".live.stale{background:#fde2e1;border-color:#f5a3a0}\n"
    "table{border-collapse:collapse;font-size:12.5px}table.board{font-size:12px}\n"
    "th,td{padding:3px 5px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}\n"
    "th{background:#f4f4f4;font-weight:600}.l{text-align:left}\n"
    "tr.best td{background:#fff3c4;font-weight:600}\n"
    "tr.err td{color:#c62828;white-space:normal;text-align:left;font-size:12px}\n"
    ".sw{display:inline-block;width:20px;border-top:3px solid;vertical-align:middle;"
    "margin-right:6px}\n"
    ".scroll{overflow-x:auto}\n"
    ".charts{display:grid;grid-template-columns:1fr 1fr;gap:8px 20px}\n"
    ".legend{font-size:12px;columns:3;margin:8px 0}.legend div{break-inside:avoid}\n"
    "svg text{font-family:system-ui,\"DejaVu Sans\",Arial,sans-serif}\n"
    "svg .ct{font-size:14px;font-weight:600}svg .tick,svg .bl,svg .bv{font-size:12px;"
    "fill:#333}\n"
    "svg .grid{stroke:#e6e6e6}svg .axis{stroke:#888}svg .muted{fill:#888}\n"
    "table.heat td.cell{width:86px;height:34px;text-align:center;border:2px solid #fff}\n"
    "table.heat td.cell small{display:block;font-size:10px;opacity:.8}\n"
    "table.heat td.best{outline:3px solid #e8a400;outline-offset:-3px}\n"
    "table.cm td{text-align:center;min-width:30px;border:1px solid #fff}\n"
    "table.cm th.v{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;"
    "vertical-align:bottom;height:auto;padding:6px 3px}\n"
    "ul.bad{font-family:\"DejaVu Sans Mono\",monospace;font-size:12px;max-height:320px;"
    "overflow:auto;border:1px solid #eee;padding:6px 6px 6px 26px}\n"
    "code{font-family:\"DejaVu Sans Mono\",monospace;font-size:12px}\n";

/* ---- formatting ------------------------------------------------------------- */

static void num(tl_strbuf *b, double v, const char *fmt)
{
    if (isfinite(v))
        tl_strbuf_printf(b, fmt, v);
    else
        tl_strbuf_puts(b, "<span class=\"muted\">&ndash;</span>");
}

static void duration(tl_strbuf *b, double s)
{
    if (!isfinite(s) || s < 0)
        tl_strbuf_puts(b, "<span class=\"muted\">not recorded</span>");
    else if (s < 60)
        tl_strbuf_printf(b, "%.1f s", s);
    else if (s < 3600)
        tl_strbuf_printf(b, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else
        tl_strbuf_printf(b, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* 1 when a is better than b under the sweep's goal; NaN is never better */
static int better(const rep_results *r, double a, double b)
{
    if (!isfinite(a))
        return 0;
    if (!isfinite(b))
        return 1;
    return r->goal_max ? a > b : a < b;
}

/* ---- summary ------------------------------------------------------------------- */

/* results.json written while the sweep runs (the coordinator's live report) */
static int running(const rep_results *r)
{
    return strcmp(r->state, "running") == 0;
}

/* A running sweep's coordinator rewrites this page at least once a minute:
 * one not rewritten for longer than this (the reader's clock against
 * "written") may be all a killed coordinator left behind. */
#define REP_STALE_SECONDS 180
#define REP_STR_(x) #x
#define REP_STR(x) REP_STR_(x)

static const char stale_script[] =
    "<script>\n"
    "(function () {\n"
    "  var p = document.getElementById('stale');\n"
    "  var written = Date.parse(p.getAttribute('data-written'));\n"
    "  var s = (Date.now() - written) / 1000;\n"
    "  if (!(s > " REP_STR(REP_STALE_SECONDS) ")) return;\n"
    "  document.getElementById('stale-min').textContent = Math.floor(s / 60);\n"
    "  p.hidden = false;\n"
    "})();\n"
    "</script>\n";

/* The notice a running sweep's page shows once it is old (hidden until the
 * script, run as the page loads, finds it so; nothing without scripts):
 * tlsweep status on OUT, the folder of results.json, tells what became of
 * the sweep. */
static void stale_notice(tl_strbuf *b, const rep_results *r)
{
    if (!r->written)
        return;
    tl_strbuf_puts(b, "<p class=\"live stale\" id=\"stale\" hidden data-written=\"");
    rep_esc(b, r->written);
    tl_strbuf_puts(b, "\"><b>This page has not been rewritten for <span id=\"stale-min\"></span> "
                      "min</b>, where a running sweep rewrites it every minute: the coordinator "
                      "may have stopped. <code>tlsweep status ");
    const char *slash = strrchr(r->file, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - r->file) : 1, slash ? r->file : ".");
    rep_esc(b, dir);
    tl_strbuf_puts(b, "</code> tells.</p>\n");
    tl_strbuf_puts(b, stale_script);
}

static void summary(tl_strbuf *b, const rep_results *r)
{
    int done = 0, failed = 0;
    for (int i = 0; i < r->n_trials; i++) {
        done += r->trials[i].done;
        failed += strcmp(r->trials[i].status, "failed") == 0;
    }
    tl_strbuf_puts(b, "<h1>");
    rep_esc(b, r->sweep);
    tl_strbuf_puts(b, "</h1>\n<p class=\"muted\">tlsweep report &middot; <code>");
    rep_esc(b, r->file);
    tl_strbuf_puts(b, "</code>");
    if (r->written) {
        tl_strbuf_puts(b, " &middot; written ");
        rep_esc(b, r->written);
    }
    tl_strbuf_puts(b, "</p>\n");
    if (running(r))
        tl_strbuf_puts(b, "<p class=\"live\"><b>The sweep is still running.</b> This page is "
                    "rewritten after every trial that ends, and at most once a minute while "
                    "trials run: reload for news. Trials under "
                    "way are marked <span class=\"running\">running</span>; their curves stop "
                    "at their last epoch.</p>\n");
    if (running(r))
        stale_notice(b, r);
    tl_strbuf_puts(b, "<div class=\"cards\">\n<div class=\"card\"><span>state</span><b class=\"");
    rep_esc(b, r->state);
    tl_strbuf_puts(b, "\">");
    rep_esc(b, r->state);
    tl_strbuf_printf(b, "</b></div>\n<div class=\"card\"><span>trials</span><b>%d done</b> of %d", done,
               r->n_trials);
    if (failed)
        tl_strbuf_printf(b, ", <span class=\"failed\" style=\"display:inline\">%d failed</span>", failed);
    tl_strbuf_puts(b, "</div>\n<div class=\"card\"><span>best ");
    rep_esc(b, r->metric);
    tl_strbuf_puts(b, " (");
    rep_esc(b, r->goal);
    tl_strbuf_puts(b, ")</span><b>");
    if (r->best_id)
        num(b, r->best_value, "%.4f");
    else
        tl_strbuf_puts(b, "&ndash;");
    tl_strbuf_puts(b, "</b></div>\n<div class=\"card\"><span>wall time</span><b>");
    duration(b, r->wall_seconds);
    tl_strbuf_puts(b, "</b>");
    if (r->runs > 0)
        tl_strbuf_printf(b, " in %ld run%s", r->runs, r->runs == 1 ? "" : "s");
    tl_strbuf_puts(b, "</div>\n<div class=\"card\" style=\"grid-column:span 2\"><span>best trial</span><b>");
    if (r->best_id)
        rep_esc(b, r->best_id);
    else
        tl_strbuf_puts(b, "none finished");
    tl_strbuf_printf(b, "</b></div>\n<div class=\"card\"><span>dataset</span><b>%ld images</b><br>"
                  "train %ld &middot; val %ld &middot; test %ld</div>\n",
               r->images, r->train, r->val, r->test);
    tl_strbuf_printf(b, "<div class=\"card\"><span>classes</span><b>%d</b> &middot; bad images %zu</div>\n"
                  "</div>\n",
               r->n_classes, r->n_bad);
}

/* ---- leaderboard ------------------------------------------------------------ */

/* the metrics besides the select one, which has its own column */
static const struct {
    const char *key, *head;
    size_t off;
} cols[4] = {{"val_accuracy", "val acc", offsetof(rep_trial, val_accuracy)},
             {"val_loss", "val loss", offsetof(rep_trial, val_loss)},
             {"accuracy", "train acc", offsetof(rep_trial, accuracy)},
             {"loss", "train loss", offsetof(rep_trial, loss)}};

/* Whether results.json gives the trials' input and head (files from
 * before they were axes do not). */
static int has_net_cols(const rep_results *r)
{
    for (int i = 0; i < r->n_trials; i++)
        if (r->trials[i].head || r->trials[i].augment || r->trials[i].image_size)
            return 1;
    return 0;
}

/* A trial's size, augment and head cells. */
static void net_cells(tl_strbuf *b, const rep_trial *t)
{
    tl_strbuf_puts(b, "<td>");
    if (t->image_size)
        tl_strbuf_printf(b, "%ld", t->image_size);
    tl_strbuf_puts(b, "</td><td class=\"l\">");
    rep_esc(b, t->augment ? t->augment : "");
    tl_strbuf_puts(b, "</td><td class=\"l\">");
    rep_esc(b, t->head ? t->head : "");
    tl_strbuf_puts(b, "</td>");
}

static void leaderboard(tl_strbuf *b, const rep_results *r)
{
    int net = has_net_cols(r);
    int ncols = 0, stops = rep_search_stops(r);
    for (int k = 0; k < 4; k++)
        ncols += strcmp(cols[k].key, r->metric) != 0;
    tl_strbuf_puts(b, "<h2>Leaderboard</h2>\n<p class=\"note\">Ranked by ");
    rep_esc(b, r->metric);
    tl_strbuf_printf(b, " (%s is better); the best trial is highlighted. The colour is the trial's "
                  "line in the learning curves.</p>\n",
               r->goal_max ? "higher" : "lower");
    tl_strbuf_puts(b, "<div class=\"scroll\"><table class=\"board\">\n<tr><th>#</th><th class=\"l\">"
                "trial</th><th class=\"l\">backbone</th><th class=\"l\">mode</th><th>lr</th>"
                "<th class=\"l\">optim</th><th>batch</th><th>epochs</th>");
    if (net)
        tl_strbuf_puts(b, "<th>size</th><th class=\"l\">augment</th><th class=\"l\">head</th>");
    tl_strbuf_puts(b, "<th>");
    rep_esc(b, r->metric);
    tl_strbuf_puts(b, "</th><th>best ep</th>");
    for (int k = 0; k < 4; k++)
        if (strcmp(cols[k].key, r->metric) != 0)
            tl_strbuf_printf(b, "<th>%s</th>", cols[k].head);
    tl_strbuf_puts(b, "<th>eval acc</th><th>time</th>");
    rep_search_stop_head(b, stops);
    tl_strbuf_puts(b, "<th class=\"l\">status</th></tr>\n");
    for (int i = 0; i < r->n_trials; i++) {
        const rep_trial *t = &r->trials[i];
        tl_strbuf_printf(b, "<tr%s><td>", i == r->best ? " class=\"best\"" : "");
        if (t->rank)
            tl_strbuf_printf(b, "%d", t->rank);
        tl_strbuf_printf(b, "</td><td class=\"l\"><span class=\"sw\" style=\"border-top-color:%s%s\">"
                      "</span>",
                   rep_colour(t->colour), rep_dash(t->colour)[0] ? ";border-top-style:dashed" : "");
        rep_esc(b, t->id);
        tl_strbuf_puts(b, "</td><td class=\"l\">");
        rep_esc(b, t->backbone);
        tl_strbuf_puts(b, "</td><td class=\"l\">");
        rep_esc(b, t->mode);
        tl_strbuf_printf(b, "</td><td>%g</td><td class=\"l\">", t->learning_rate);
        rep_esc(b, t->optimizer);
        tl_strbuf_printf(b, "</td><td>%ld</td><td>%ld</td>", t->batch_size, t->epochs);
        if (net)
            net_cells(b, t);
        tl_strbuf_puts(b, "<td><b>");
        if (t->done) {
            num(b, t->metric, "%.4f");
            tl_strbuf_printf(b, "</b></td><td>%ld</td><td>", t->best_epoch);
            for (int k = 0; k < 4; k++)
                if (strcmp(cols[k].key, r->metric) != 0) {
                    double v;
                    memcpy(&v, (const char *)t + cols[k].off, sizeof v);
                    num(b, v, "%.4f");
                    tl_strbuf_puts(b, "</td><td>");
                }
            num(b, t->eval_accuracy, "%.4f");
            if (t->eval_split && isfinite(t->eval_accuracy)) {
                tl_strbuf_puts(b, " <span class=\"muted\">");
                rep_esc(b, t->eval_split);
                tl_strbuf_puts(b, "</span>");
            }
            tl_strbuf_puts(b, "</td><td>");
            duration(b, t->seconds);
        } else {
            tl_strbuf_puts(b, "</b></td><td></td><td></td><td></td><td></td><td></td><td>");
            if (ncols == 4)
                tl_strbuf_puts(b, "</td><td>");
        }
        rep_search_stop_cell(b, stops, t);
        tl_strbuf_puts(b, "</td><td class=\"l ");
        rep_esc(b, t->status);
        tl_strbuf_puts(b, "\">");
        rep_esc(b, t->status);
        tl_strbuf_puts(b, "</td></tr>\n");
        if (t->error) {
            tl_strbuf_printf(b, "<tr class=\"err\"><td></td><td colspan=\"%d\">",
                             12 + ncols + 3 * net + stops);
            rep_esc(b, t->error);
            tl_strbuf_puts(b, "</td></tr>\n");
        }
    }
    tl_strbuf_puts(b, "</table></div>\n");
}

/* ---- learning curves ----------------------------------------------------------- */

static void curves(tl_strbuf *b, const rep_results *r)
{
    tl_strbuf_puts(b, "<h2>Learning curves</h2>\n<p class=\"note\">One line per trial, per epoch; "
                "the best trial is the thick line. Epochs of a diverged trial without a finite "
                "value are gaps.</p>\n<div class=\"legend\">\n");
    for (int i = 0; i < r->n_trials; i++) {
        const rep_trial *t = &r->trials[i];
        tl_strbuf_printf(b, "<div%s><span class=\"sw\" style=\"border-top-color:%s%s%s\"></span>",
                   i == r->best ? " style=\"font-weight:600\"" : "", rep_colour(t->colour),
                   rep_dash(t->colour)[0] ? ";border-top-style:dashed" : "",
                   i == r->best ? ";border-top-width:5px" : "");
        rep_esc(b, t->id);
        tl_strbuf_puts(b, i == r->best                       ? " (best)</div>\n"
                       : strcmp(t->status, "running") == 0 ? " <span class=\"running\">(running)</span></div>\n"
                                                           : "</div>\n");
    }
    tl_strbuf_puts(b, "</div>\n<div class=\"charts\">\n");
    rep_svg_curves(b, r, "Loss (train)", offsetof(rep_epoch, loss), 0);
    rep_svg_curves(b, r, "Loss (validation)", offsetof(rep_epoch, val_loss), 0);
    rep_svg_curves(b, r, "Accuracy (train)", offsetof(rep_epoch, accuracy), 1);
    rep_svg_curves(b, r, "Accuracy (validation)", offsetof(rep_epoch, val_accuracy), 1);
    tl_strbuf_puts(b, "</div>\n");
}

/* ---- the grid as heat maps -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* index of s in v[0..n), appending it when absent */
static int intern(const char **v, int *n, const char *s)
{
    for (int k = 0; k < *n; k++)
        if (strcmp(v[k], s) == 0)
            return k;
    v[*n] = s;
    return (*n)++;
}

/* The trials in grid order (by "index" where the file has one): modes and
 * backbones are listed in the order the sweep file gives them. */
static int *grid_order(const rep_results *r)
{
    int *o = malloc(((size_t)r->n_trials + 1) * sizeof *o);
    if (!o)
        return NULL;
    for (int i = 0; i < r->n_trials; i++)
        o[i] = i;
    for (int i = 1; i < r->n_trials; i++) { /* insertion sort: stable, small n */
        int v = o[i], j = i;
        while (j > 0 && r->trials[o[j - 1]].index > r->trials[v].index)
            o[j] = o[j - 1], j--;
        o[j] = v;
    }
    return o;
}

static void heat_backbone(tl_strbuf *b, const rep_results *r, const int *order, const char *bb,
                          double lo, double hi, const char **modes, double *lrs)
{
    int nm = 0, nl = 0;
    for (int k = 0; k < r->n_trials; k++) {
        const rep_trial *t = &r->trials[order[k]];
        if (strcmp(t->backbone, bb) != 0)
            continue;
        intern(modes, &nm, t->mode);
        int seen = 0;
        for (int j = 0; j < nl; j++)
            seen |= lrs[j] == t->learning_rate;
        if (!seen)
            lrs[nl++] = t->learning_rate;
    }
    qsort(lrs, (size_t)nl, sizeof *lrs, cmp_double);
    tl_strbuf_puts(b, "<h3>");
    rep_esc(b, bb);
    tl_strbuf_puts(b, "</h3>\n<div class=\"scroll\"><table class=\"heat\">\n<tr><th class=\"l\">mode "
                "\\ learning rate</th>");
    for (int j = 0; j < nl; j++)
        tl_strbuf_printf(b, "<th>%g</th>", lrs[j]);
    tl_strbuf_puts(b, "</tr>\n");
    for (int m = 0; m < nm; m++) {
        tl_strbuf_puts(b, "<tr><th class=\"l\">");
        rep_esc(b, modes[m]);
        tl_strbuf_puts(b, "</th>");
        for (int j = 0; j < nl; j++) {
            int n = 0, n_done = 0, best = -1, n_failed = 0;
            for (int i = 0; i < r->n_trials; i++) {
                const rep_trial *t = &r->trials[i];
                if (strcmp(t->backbone, bb) || strcmp(t->mode, modes[m]) ||
                    t->learning_rate != lrs[j])
                    continue;
                n++;
                n_failed += strcmp(t->status, "failed") == 0;
                if (t->done) {
                    n_done++;
                    if (best < 0 || better(r, t->metric, r->trials[best].metric))
                        best = i;
                }
            }
            if (n == 0) {
                tl_strbuf_puts(b, "<td class=\"cell\" style=\"background:#fafafa\"></td>");
                continue;
            }
            if (best < 0 || !isfinite(r->trials[best].metric)) {
                tl_strbuf_printf(b, "<td class=\"cell\" style=\"background:#eee\"><span class=\"%s\">%s"
                              "</span>",
                           n_failed ? "failed" : "pending",
                           best >= 0 ? "no value" : n_failed ? "failed" : "not done");
            } else {
                double v = r->trials[best].metric;
                double t = hi > lo ? (v - lo) / (hi - lo) : 1;
                if (!r->goal_max)
                    t = 1 - t;
                char col[8];
                int white = rep_heat(0.08 + 0.92 * t, col);
                tl_strbuf_printf(b, "<td class=\"cell%s\" style=\"background:%s;color:%s\" title=\"",
                           best == r->best ? " best" : "", col, white ? "#fff" : "#111");
                rep_esc(b, r->trials[best].id);
                tl_strbuf_printf(b, "\">%.4f", v);
            }
            if (n > 1)
                tl_strbuf_printf(b, "<small>best of %d (%d done)</small>", n, n_done);
            tl_strbuf_puts(b, "</td>");
        }
        tl_strbuf_puts(b, "</tr>\n");
    }
    tl_strbuf_puts(b, "</table></div>\n");
}

static void heat(tl_strbuf *b, const rep_results *r)
{
    tl_strbuf_puts(b, "<h2>The grid</h2>\n");
    if (r->n_trials == 0) {
        tl_strbuf_puts(b, "<p class=\"muted\">no trials</p>\n");
        return;
    }
    int *order = grid_order(r);
    const char **names = malloc(2 * (size_t)r->n_trials * sizeof *names);
    double *lrs = malloc((size_t)r->n_trials * sizeof *lrs);
    if (!order || !names || !lrs) {
        b->oom = 1;
        goto out;
    }
    double lo = INFINITY, hi = -INFINITY;
    int n_bb = 0, multi = 0;
    const char **bbs = names + r->n_trials;
    for (int k = 0; k < r->n_trials; k++) {
        const rep_trial *t = &r->trials[order[k]];
        intern(bbs, &n_bb, t->backbone);
        if (t->done && isfinite(t->metric)) {
            lo = fmin(lo, t->metric);
            hi = fmax(hi, t->metric);
        }
        for (int i = 0; i < order[k] && !multi; i++) {
            const rep_trial *u = &r->trials[i];
            multi = !strcmp(u->backbone, t->backbone) && !strcmp(u->mode, t->mode) &&
                    u->learning_rate == t->learning_rate;
        }
    }
    tl_strbuf_puts(b, "<p class=\"note\">Per backbone: rows are modes, columns learning rates; the "
                "colour and the number are ");
    rep_esc(b, r->metric);
    tl_strbuf_printf(b, " (darker is better), on one scale across the sweep.%s The best trial's cell "
                  "is outlined.</p>\n",
               multi ? " Several trials share a cell (other optimizers, batch sizes or "
                       "schedules): the cell shows the best of them."
                     : "");
    for (int k = 0; k < n_bb; k++)
        heat_backbone(b, r, order, bbs[k], lo, hi, names, lrs);
out:
    free(order);
    free(names);
    free(lrs);
}

/* ---- the best trial: confusion matrix and per-class accuracy ---------------------- */

static void confusion(tl_strbuf *b, const rep_results *r)
{
    tl_strbuf_puts(b, "<h2>Best trial: confusion matrix</h2>\n");
    const rep_trial *t = r->best >= 0 ? &r->trials[r->best] : NULL;
    if (!t || !t->confusion || r->n_classes == 0) {
        tl_strbuf_puts(b, t ? "<p class=\"muted\">no confusion matrix recorded</p>\n"
                      : "<p class=\"muted\">no trial finished</p>\n");
        return;
    }
    int nc = r->n_classes;
    tl_strbuf_puts(b, "<p class=\"note\"><b>");
    rep_esc(b, t->id);
    tl_strbuf_puts(b, "</b> on the ");
    rep_esc(b, t->eval_split ? t->eval_split : "evaluation");
    tl_strbuf_puts(b, " split. Rows are the true class, columns the predicted one; a cell's shade is "
                "its share of the row (blue: right, red: wrong).</p>\n"
                "<div class=\"scroll\"><table class=\"cm\">\n<tr><th class=\"l\">true \\ predicted"
                "</th>");
    for (int k = 0; k < nc; k++) {
        tl_strbuf_puts(b, "<th class=\"v\">");
        rep_esc(b, r->classes[k]);
        tl_strbuf_puts(b, "</th>");
    }
    tl_strbuf_puts(b, "<th>n</th></tr>\n");
    rep_bar *bars = calloc((size_t)nc, sizeof *bars);
    char (*notes)[48] = calloc((size_t)nc, sizeof *notes);
    if (!bars || !notes) {
        b->oom = 1;
        goto out;
    }
    for (int a = 0; a < nc; a++) {
        const long *row = t->confusion + (size_t)a * (size_t)nc;
        double sum = 0;
        for (int c = 0; c < nc; c++)
            sum += (double)row[c];
        tl_strbuf_puts(b, "<tr><th class=\"l\">");
        rep_esc(b, r->classes[a]);
        tl_strbuf_puts(b, "</th>");
        for (int c = 0; c < nc; c++) {
            double f = sum > 0 ? row[c] / sum : 0;
            tl_strbuf_printf(b, "<td class=\"cm\" style=\"background:rgba(%s,%.3f);color:%s\">%ld</td>",
                       a == c ? "33,113,181" : "214,39,40", f, f > 0.55 ? "#fff" : "#222",
                       row[c]);
        }
        tl_strbuf_printf(b, "<td>%.0f</td></tr>\n", sum);
        bars[a].label = r->classes[a];
        bars[a].value = sum > 0 ? 100.0 * row[a] / sum : NAN;
        bars[a].colour = "#2171b5";
        snprintf(notes[a], sizeof notes[a], "(%ld of %.0f)", row[a], sum);
        bars[a].note = notes[a];
    }
    tl_strbuf_puts(b, "</table></div>\n<h2>Best trial: accuracy per class</h2>\n");
    rep_svg_bars(b, "Accuracy per class (recall, % of the class's images)", bars, nc, "%.1f%%",
                 100);
out:
    free(bars);
    free(notes);
}

/* ---- bad images ------------------------------------------------------------------- */

#define BAD_SHOWN 1000

static void bad_images(tl_strbuf *b, const rep_results *r)
{
    tl_strbuf_printf(b, "<h2>Bad images skipped (%zu)</h2>\n", r->n_bad);
    if (r->n_bad == 0) {
        tl_strbuf_puts(b, "<p>none</p>\n");
        return;
    }
    tl_strbuf_puts(b, "<ul class=\"bad\">\n");
    for (size_t k = 0; k < r->n_bad && k < BAD_SHOWN; k++) {
        tl_strbuf_puts(b, "<li>");
        rep_esc(b, r->bad[k]);
        tl_strbuf_puts(b, "</li>\n");
    }
    tl_strbuf_puts(b, "</ul>\n");
    if (r->n_bad > BAD_SHOWN)
        tl_strbuf_printf(b, "<p class=\"note\">&hellip; and %zu more, all listed in results.json</p>\n",
                   r->n_bad - BAD_SHOWN);
}

/* ---- time per phase --------------------------------------------------------------- */

static void phases(tl_strbuf *b, const rep_results *r)
{
    tl_strbuf_puts(b, "<h2>Time per phase</h2>\n<p class=\"note\">Feature extraction is the backbone "
                "run once per image for the trials that share a feature cache; training is the "
                "trials' own time, summed (they run side by side on the workers, so the sum can "
                "exceed the wall time).</p>\n");
    size_t cap = (size_t)r->n_caches + (size_t)r->n_trials + 2;
    rep_bar *bars = calloc(cap, sizeof *bars);
    const char **modes = calloc((size_t)r->n_trials + 1, sizeof *modes);
    char (*labels)[160] = calloc(cap, sizeof *labels);
    if (!bars || !modes || !labels) {
        b->oom = 1;
        goto out;
    }
    int n = 0, nm = 0;
    double max = 0, total = 0;
    for (int k = 0; k < r->n_caches; k++) {
        snprintf(labels[n], sizeof labels[n], "features: %s",
                 r->caches[k].label ? r->caches[k].label : r->caches[k].text);
        bars[n] = (rep_bar){labels[n], r->caches[k].seconds, "#ff7f0e", NULL};
        n++;
    }
    int first_mode = n + 1;
    bars[n++] = (rep_bar){"training: all trials", 0, "#2ca02c", NULL};
    for (int i = 0; i < r->n_trials; i++) {
        const rep_trial *t = &r->trials[i];
        if (!t->done || !isfinite(t->seconds))
            continue;
        total += t->seconds;
        int m = intern(modes, &nm, t->mode);
        if (first_mode + m == n) {
            snprintf(labels[n], sizeof labels[n], "training: %s", t->mode);
            bars[n] = (rep_bar){labels[n], 0, "#98df8a", NULL};
            n++;
        }
        bars[first_mode + m].value += t->seconds;
    }
    bars[first_mode - 1].value = total;
    bars[n++] = (rep_bar){"wall time", r->wall_seconds, "#1f77b4", NULL};
    for (int k = 0; k < n; k++)
        if (isfinite(bars[k].value))
            max = fmax(max, bars[k].value);
    rep_svg_bars(b, "Seconds per phase", bars, n, "%.1f s", max);
out:
    free(bars);
    free(modes);
    free(labels);
}

/* ---- the page --------------------------------------------------------------------- */

void rep_html_page(tl_strbuf *b, const rep_results *r)
{
    tl_strbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=1100\">\n<title>tlsweep report: ");
    rep_esc(b, r->sweep);
    tl_strbuf_printf(b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n", css);
    summary(b, r);
    rep_search_summary(b, r);
    leaderboard(b, r);
    rep_search_rungs(b, r);
    rep_search_sampled(b, r);
    curves(b, r);
    heat(b, r);
    confusion(b, r);
    bad_images(b, r);
    phases(b, r);
    tl_strbuf_puts(b, "<p class=\"note\" style=\"margin-top:30px\">Written by <code>tlsweep report"
                "</code> from results.json; self-contained (nothing fetched; one small script while the "
                "sweep runs, to say when the page is old).</p>\n"
                "</main>\n</body>\n</html>\n");
}
