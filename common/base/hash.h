/* FNV-1a, 64 bit (Fowler/Noll/Vo): the keys that name things on disk —
 * trial keys in the journal, feature-cache keys, the dataset fingerprint.
 * Not cryptographic; changing it orphans every journal and cache.
 *
 * Chained: pass TL_FNV1A_OFFSET to start, the previous result to go on, so
 * hashing "ab" equals hashing "a" then "b". */
#ifndef TLSWEEP_HASH_H
#define TLSWEEP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define TL_FNV1A_OFFSET 0xcbf29ce484222325ULL
#define TL_FNV1A_PRIME 0x100000001b3ULL

/* n bytes of p into h. */
uint64_t tl_fnv1a_bytes(uint64_t h, const void *p, size_t n);
/* The bytes of s into h, without its NUL. */
uint64_t tl_fnv1a_str(uint64_t h, const char *s);

#endif
