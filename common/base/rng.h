/* Deterministic random numbers. Counter-based (a pure function of seed and
 * index) where order must not depend on thread timing; a small stateful
 * generator for weight initialisation. */
#ifndef TLSWEEP_RNG_H
#define TLSWEEP_RNG_H

#include <stdint.h>

/* splitmix64 finaliser of (seed, counter): a different stream per seed. */
uint64_t rng_hash(uint64_t seed, uint64_t counter);
/* Uniform in [0, 1) with 24 bits, from rng_hash(seed, counter). */
float rng_uniform_at(uint64_t seed, uint64_t counter);
/* Mixes several ids (seed, trial, epoch, image...) into one seed. */
uint64_t rng_mix(uint64_t a, uint64_t b);

typedef struct {
    uint64_t seed, counter;
} rng_state;

void rng_init(rng_state *r, uint64_t seed);
uint64_t rng_next(rng_state *r);
float rng_uniform(rng_state *r);             /* [0, 1) */

#endif
