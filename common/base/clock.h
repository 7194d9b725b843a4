/* Clocks: seconds on the monotonic clock for durations, wall-clock
 * milliseconds for records that outlive the process. */
#ifndef TLSWEEP_CLOCK_H
#define TLSWEEP_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline double tl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t tl_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
