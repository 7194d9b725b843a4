/* tf.keras.callbacks.EarlyStopping's decision (Keras 3,
 * keras/src/callbacks/early_stopping.py: on_epoch_end, _is_improvement),
 * on a table of values. */
#include "common/sweep/early_stop.h"

#include <math.h>

int sweep_early_stop_at(const sweep_early_stop *es, const double *v, int n, int *best_epoch)
{
    double best = es->mode_max ? -INFINITY : INFINITY;
    double d = fabs(es->min_delta);
    int wait = 0, kept = n > 0;   /* before any improvement, the first epoch's weights */
    int stop = 0;
    for (int ep = 0; ep < n && !stop; ep++) {
        wait++;
        /* NaN never improves */
        if (es->mode_max ? v[ep] - d > best : v[ep] + d < best) {
            best = v[ep];
            kept = ep + 1;
            wait = 0;
            continue;   /* an improving epoch never stops */
        }
        if (wait >= es->patience && ep > 0)
            stop = ep + 1;
    }
    if (best_epoch)
        *best_epoch = kept;
    return stop;
}
