/* A growable text buffer for writers that append many small pieces (a JSON
 * re-emitter, an HTML page). Appends never fail loudly: the first failed
 * allocation sets oom, later appends do nothing, and the writer checks oom
 * once at the end.
 *
 *   tl_strbuf b = TL_STRBUF_INIT;
 *   tl_strbuf_puts(&b, "<p>");
 *   tl_strbuf_printf(&b, "%d trials", n);
 *   if (b.oom) ...;            // else b.s holds b.len bytes and a NUL
 *   tl_strbuf_free(&b);
 */
#ifndef TLSWEEP_STRBUF_H
#define TLSWEEP_STRBUF_H

#include <stddef.h>

typedef struct {
    char *s;      /* NUL-terminated; NULL until the first append */
    size_t len;   /* bytes before the NUL */
    size_t cap;
    int oom;      /* an append failed to allocate; s holds what came before */
} tl_strbuf;

#define TL_STRBUF_INIT {NULL, 0, 0, 0}

/* Each returns 0, or TL_ENOMEM (now or after an earlier failure). */
int tl_strbuf_put(tl_strbuf *b, const void *p, size_t n);
int tl_strbuf_puts(tl_strbuf *b, const char *str);
int tl_strbuf_putc(tl_strbuf *b, char c);
int tl_strbuf_printf(tl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Releases the text and resets b to TL_STRBUF_INIT. */
void tl_strbuf_free(tl_strbuf *b);

#endif
