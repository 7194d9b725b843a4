#include "common/base/rng.h"

uint64_t rng_hash(uint64_t seed, uint64_t counter)
{
    uint64_t z = seed * 0xd1b54a32d192ed03ULL + counter * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float rng_uniform_at(uint64_t seed, uint64_t counter)
{
    return (float)(rng_hash(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

uint64_t rng_mix(uint64_t a, uint64_t b)
{
    return rng_hash(a, b ^ 0x5851f42d4c957f2dULL);
}

void rng_init(rng_state *r, uint64_t seed)
{
    r->seed = seed;
    r->counter = 0;
}

uint64_t rng_next(rng_state *r)
{
    return rng_hash(r->seed, r->counter++);
}

float rng_uniform(rng_state *r)
{
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}
