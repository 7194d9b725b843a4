/* A set of strings (owned copies) for linear-time duplicate checks: open
 * addressing on FNV-1a (hash.h), linear probing, at most half full. The
 * importers check tens of thousands of tensor names with it; a scan of
 * everything seen so far per name was quadratic. */
#ifndef TLSWEEP_STRSET_H
#define TLSWEEP_STRSET_H

#include <stddef.h>

typedef struct {
    char **slot;   /* cap entries, NULL where empty */
    size_t n, cap; /* cap 0 or a power of two */
} tl_strset;

void tl_strset_init(tl_strset *s);
void tl_strset_free(tl_strset *s);
/* 1 if s holds str, else 0. */
int tl_strset_has(const tl_strset *s, const char *str);
/* Adds a copy of str: 1 when added, 0 when it was there already,
 * TL_ENOMEM (s unchanged). */
int tl_strset_add(tl_strset *s, const char *str);

#endif
