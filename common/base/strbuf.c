#include "common/base/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/err.h"

/* Room for more bytes and the NUL; doubling from 4 KiB. */
static int grow(tl_strbuf *b, size_t more)
{
    if (b->oom)
        return TL_ENOMEM;
    if (more > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return TL_ENOMEM;
    }
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return TL_ENOMEM;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

int tl_strbuf_put(tl_strbuf *b, const void *p, size_t n)
{
    if (grow(b, n))
        return TL_ENOMEM;
    if (n)
        memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

int tl_strbuf_puts(tl_strbuf *b, const char *str)
{
    return tl_strbuf_put(b, str, strlen(str));
}

int tl_strbuf_putc(tl_strbuf *b, char c)
{
    return tl_strbuf_put(b, &c, 1);
}

int tl_strbuf_printf(tl_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) /* a conversion that cannot be formatted: nothing appended */
        return TL_EINVAL;
    if (grow(b, (size_t)n))
        return TL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void tl_strbuf_free(tl_strbuf *b)
{
    free(b->s);
    *b = (tl_strbuf)TL_STRBUF_INIT;
}
