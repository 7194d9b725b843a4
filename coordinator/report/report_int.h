/* Inside the report: results.json as checked C structs (strings point into
 * the parsed JSON, which outlives them), the page's HTML escaping, and the
 * page's sections (report_html.c) and charts (report_svg.c). */
#ifndef TLSWEEP_REPORT_INT_H
#define TLSWEEP_REPORT_INT_H

#include <stddef.h>

#include "common/base/strbuf.h"

typedef struct {
    double epoch, loss, accuracy, val_loss, val_accuracy, seconds; /* NAN when absent */
} rep_epoch;

typedef struct {
    int rank;              /* 1 = best; 0 for trials that did not finish */
    int index;             /* position in the sweep's grid, or -1 */
    const char *id, *status, *backbone, *mode, *optimizer;
    const char *error;     /* NULL when none */
    const char *eval_split; /* NULL when none */
    /* the trial's input and head; NULL / 0 in results.json from before they were axes */
    const char *head, *augment;
    long image_size;
    double learning_rate;
    long batch_size, epochs;
    int feature_cache;
    int done;              /* status "done": the metrics below are set */
    double metric;         /* the select metric; NAN when absent */
    double val_accuracy, val_loss, accuracy, loss, eval_accuracy, eval_loss, seconds;
    long best_epoch;
    long *confusion;       /* (n_classes, n_classes) rows = truth, or NULL */
    rep_epoch *hist;
    int n_hist;
    int colour;            /* index into the palette, by rank order */
    /* the search's fields (results.json before them lacks them) */
    int rung;              /* the highest rung whose end it reached; -1: none or absent */
    long epochs_done;      /* -1 when absent */
    const char *stop_reason; /* "epochs", "early_stopping", "rung"; NULL when absent */
    long stopped_epoch;    /* 0 when absent or null */
    double task_seconds;   /* NAN when absent */
    double weight_decay, momentum, label_smoothing; /* NAN when absent or null */
} rep_trial;

/* A sampled axis of the search: the range its values were drawn from. */
typedef enum { REP_DIST_UNIFORM, REP_DIST_LOG_UNIFORM, REP_DIST_INT_UNIFORM } rep_dist_kind;

typedef enum {
    REP_AXIS_LEARNING_RATE,
    REP_AXIS_BATCH_SIZE,
    REP_AXIS_WEIGHT_DECAY,
    REP_AXIS_MOMENTUM,
    REP_AXIS_LABEL_SMOOTHING,
    REP_N_AXES
} rep_axis_kind;

typedef struct {
    rep_axis_kind axis;
    rep_dist_kind dist;
    double low, high;      /* low > 0 for log_uniform */
} rep_sampled;

typedef struct {
    const char *method;    /* NULL when results.json has no "search" */
    long trials;
    long seed;             /* -1 when absent or null (a grid draws nothing) */
    long *rungs;           /* epochs at each rung's end, ascending */
    int n_rungs;
    long min_epochs, reduction_factor; /* 0 when absent */
    rep_sampled sampled[REP_N_AXES];
    int n_sampled;
} rep_search;

typedef struct {
    const char *key, *text;
    const char *label;     /* what runs (text with the weights' preprocessing); NULL when absent */
    long trials, extractions, forward_images;
    double seconds;        /* NAN when absent (results.json before run counts) */
} rep_cache;

typedef struct {
    const char *file;      /* OUT/results.json, for messages */
    const char *sweep, *state, *metric, *goal;
    const char *written;   /* when the results were taken (ISO 8601 UTC); NULL when absent */
    int goal_max;
    long runs;             /* 0 when absent */
    double wall_seconds;   /* NAN when absent */
    const char *best_id;   /* NULL when no trial finished */
    double best_value;
    int best;              /* index into trials, or -1 */
    const char **classes;
    int n_classes;
    long images, train, val, test;
    rep_cache *caches;
    int n_caches;
    rep_trial *trials;     /* ranked first, as in the file */
    int n_trials;
    const char **bad;
    size_t n_bad;
    rep_search search;
    long workers;          /* 0 when absent */
    double busy_share;     /* NAN when absent or null */
} rep_results;

/* ---- HTML text, into a tl_strbuf (b->oom is checked once, at the end) ---- */

/* s with & < > " ' as entities: safe in text and in quoted attributes. */
void rep_esc(tl_strbuf *b, const char *s);

/* ---- charts (report_svg.c) ---------------------------------------------- */

/* A round step (1, 2 or 5 times a power of ten) giving about n ticks up to max. */
double rep_nice_step(double max, int n);
/* The palette for trial lines: distinct colours, then the same with dashes. */
const char *rep_colour(int k);
/* "stroke-dasharray" value for the k-th trial colour ("" for the first 10). */
const char *rep_dash(int k);
/* A colour from light (t = 0) to dark blue (t = 1) as "#rrggbb" in out[8];
 * returns 1 when text on it should be white. */
int rep_heat(double t, char out[8]);

/* One line chart: the y of every trial's history (field at byte offset
 * `off` in rep_epoch) against epoch. y_unit: 1 for accuracy (0..1 axis),
 * 0 for loss (0..max). */
void rep_svg_curves(tl_strbuf *b, const rep_results *r, const char *title, size_t off, int y_unit);

typedef struct {
    const char *label;
    double value;
    const char *colour;
    const char *note;      /* text after the value, or NULL */
} rep_bar;

/* A horizontal bar chart, bars scaled to the largest value. unit: printf
 * format for the value ("%.1f s", "%.1f%%"). */
void rep_svg_bars(tl_strbuf *b, const char *title, const rep_bar *bars, int n, const char *unit,
                  double max);

/* ---- the search (report_search.c): rungs, stop reasons, sampled axes ----- */

/* The name of an axis as results.json spells it ("learning_rate"). */
const char *rep_axis_name(rep_axis_kind a);
/* A trial's value on an axis; NAN when it has none. */
double rep_axis_value(const rep_trial *t, rep_axis_kind a);
/* 1 when the leaderboard gets a "stopped" column: a rung search, or a trial
 * that early stopping ended. */
int rep_search_stops(const rep_results *r);
/* The leaderboard's "stopped" header cell and a trial's cell, when shown
 * (rep_search_stops). The cell opens with "</td><td": it follows the row's
 * open cell. */
void rep_search_stop_head(tl_strbuf *b, int shown);
void rep_search_stop_cell(tl_strbuf *b, int shown, const rep_trial *t);
/* One line under the summary's cards: the search method, for a rung search
 * the epochs trained against every trial trained to the end, and the
 * workers' busy share; nothing for results.json without "search". */
void rep_search_summary(tl_strbuf *b, const rep_results *r);
/* The "Rungs" section when the search has more than one rung. */
void rep_search_rungs(tl_strbuf *b, const rep_results *r);
/* The select metric against each sampled axis, one scatter chart each. */
void rep_search_sampled(tl_strbuf *b, const rep_results *r);

/* ---- the page (report_html.c) ------------------------------------------- */

void rep_html_page(tl_strbuf *b, const rep_results *r);

#endif
