/* A separable synthetic image task for smoke tests and the demo before
 * real data exists: class k puts a bright square in region k of the image
 * (regions tile the image), over uniform noise. */
#ifndef TLSWEEP_SYNTH_H
#define TLSWEEP_SYNTH_H

#include <stdint.h>

/* x (count, size, size, 3) in [-1, 1], labels (count) in [0, classes).
 * classes <= 9. Deterministic in seed. */
void synth_images(float *x, int *labels, int count, int size, int classes, uint64_t seed);

#endif
