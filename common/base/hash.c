#include "common/base/hash.h"

#include <string.h>

uint64_t tl_fnv1a_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= TL_FNV1A_PRIME;
    }
    return h;
}

uint64_t tl_fnv1a_str(uint64_t h, const char *s)
{
    return tl_fnv1a_bytes(h, s, strlen(s));
}
