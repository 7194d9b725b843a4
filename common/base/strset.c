#include "common/base/strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"
#include "common/base/hash.h"

void tl_strset_init(tl_strset *s)
{
    memset(s, 0, sizeof *s);
}

void tl_strset_free(tl_strset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* The slot holding str, or the empty slot where it would go. */
static size_t probe(char *const *slot, size_t cap, const char *str)
{
    size_t i = (size_t)tl_fnv1a_str(TL_FNV1A_OFFSET, str) & (cap - 1);
    while (slot[i] && strcmp(slot[i], str))
        i = (i + 1) & (cap - 1);
    return i;
}

int tl_strset_has(const tl_strset *s, const char *str)
{
    return s->cap && s->slot[probe(s->slot, s->cap, str)] != NULL;
}

static int grow(tl_strset *s)
{
    size_t cap = s->cap ? 2 * s->cap : 64;
    if (cap > SIZE_MAX / sizeof *s->slot)
        return TL_ENOMEM;
    char **slot = calloc(cap, sizeof *slot);
    if (!slot)
        return TL_ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i])
            slot[probe(slot, cap, s->slot[i])] = s->slot[i];
    free(s->slot);
    s->slot = slot;
    s->cap = cap;
    return 0;
}

int tl_strset_add(tl_strset *s, const char *str)
{
    if (tl_strset_has(s, str))
        return 0;
    if (2 * (s->n + 1) > s->cap && grow(s))
        return TL_ENOMEM;
    char *copy = strdup(str);
    if (!copy)
        return TL_ENOMEM;
    s->slot[probe(s->slot, s->cap, str)] = copy;
    s->n++;
    return 1;
}
