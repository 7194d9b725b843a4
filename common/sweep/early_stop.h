/* Per-trial early stopping, as tf.keras.callbacks.EarlyStopping decides it.
 *
 * The decision is a pure function of the monitored values of the epochs
 * so far, so a resumed trial (whose history is in its checkpoint) decides
 * as the uninterrupted one would, and it can be tested on tables. */
#ifndef TLSWEEP_EARLY_STOP_H
#define TLSWEEP_EARLY_STOP_H

#include "common/sweep/sweep.h"

/* Keras 3's loop over values v[0..n) (epoch i + 1's monitor): best starts
 * at +inf (min) / -inf (max); each epoch wait += 1; an improvement
 * (v - min_delta > best for max, v + min_delta < best for min) sets best
 * and wait = 0 and never stops; otherwise training stops after the epoch
 * when wait >= patience, never after the first. Returns that epoch
 * (1-based) when it is within the n, else 0 (go on). *best_epoch (may be
 * NULL) gets the last improving epoch up to there (the first epoch when
 * none improved), what restore_best_weights restores. */
int sweep_early_stop_at(const sweep_early_stop *es, const double *v, int n, int *best_epoch);

#endif
