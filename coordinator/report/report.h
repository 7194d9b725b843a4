/* The report page: OUT/report.html from OUT/results.json, one
 * self-contained file (inline CSS and SVG, no scripts, no network) with the
 * summary, the leaderboard, learning curves, the grid as a heat map, the
 * best trial's confusion matrix and per-class accuracy, the bad images
 * skipped and the time spent per phase. */
#ifndef TLSWEEP_REPORT_H
#define TLSWEEP_REPORT_H

#include "common/base/err.h"

/* Reads OUT/results.json (checked as untrusted input: a missing key or a
 * value of the wrong type is a one-line error naming the file and the key
 * path, e.g. "out/results.json: trials[2].backbone: missing") and writes
 * OUT/report.html atomically. On error nothing is written. Returns 0 or a
 * negative TL_E* code. */
int report_write(const char *out_dir, tl_err *e);

#endif
