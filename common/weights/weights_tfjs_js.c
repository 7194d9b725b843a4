/* The JavaScript side of tfjs files: nsfwjs wraps its model.json as a JS
 * object literal and its shards as base64 strings in small browserify
 * modules. A small parser for that literal (strings, numbers, !0/!1,
 * unquoted keys, comments) rewrites it as JSON; base64 decodes the shards.
 * What the JSON and the bytes mean is weights_tfjs.c's business. */
#include "common/weights/weights_tfjs_js.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/strbuf.h"

/* ---- base64 ------------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long weights_tfjs_base64_decode(const char *src, size_t len, unsigned char *dst, size_t cap)
{
    /* padding only at the very end, at most two, completing a quantum */
    size_t pad = 0;
    while (pad < 2 && len > 0 && src[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4)
        return -1;
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap || need > (size_t)LONG_MAX)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 4 <= len; i += 4) {
        int a = b64_value((unsigned char)src[i]), b = b64_value((unsigned char)src[i + 1]);
        int c = b64_value((unsigned char)src[i + 2]), d = b64_value((unsigned char)src[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        dst[o++] = (unsigned char)(v >> 16);
        dst[o++] = (unsigned char)(v >> 8);
        dst[o++] = (unsigned char)v;
    }
    size_t rest = len - i;
    if (rest) {
        int a = b64_value((unsigned char)src[i]), b = b64_value((unsigned char)src[i + 1]);
        int c = rest == 3 ? b64_value((unsigned char)src[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        dst[o++] = (unsigned char)(v >> 16);
        if (rest == 3)
            dst[o++] = (unsigned char)(v >> 8);
    }
    return (long)o;
}

/* ---- JS module wrapper -> JSON ----------------------------------------------- */

typedef struct {
    const char *s;
    size_t len, i;
    int depth;
    tl_strbuf out;
    const char *err;     /* static description of the first error */
} jsp;

#define JSP_MAX_DEPTH 256

static int is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int peek(const jsp *p)
{
    return p->i < p->len ? (unsigned char)p->s[p->i] : -1;
}

static void skip_ws(jsp *p)
{
    while (p->i < p->len) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->i++;
        } else if (c == '/' && p->i + 1 < p->len && p->s[p->i + 1] == '/') {
            while (p->i < p->len && p->s[p->i] != '\n')
                p->i++;
        } else if (c == '/' && p->i + 1 < p->len && p->s[p->i + 1] == '*') {
            const char *end = NULL;
            for (size_t k = p->i + 2; k + 1 < p->len; k++)
                if (p->s[k] == '*' && p->s[k + 1] == '/') {
                    end = p->s + k;
                    break;
                }
            if (!end) {
                p->i = p->len;
                return;
            }
            p->i = (size_t)(end - p->s) + 2;
        } else {
            return;
        }
    }
}

static int fail(jsp *p, const char *what)
{
    if (!p->err)
        p->err = what;
    return -1;
}

static int parse_value(jsp *p);

/* A "..." or '...' literal, re-emitted as a JSON string. */
static int parse_string(jsp *p)
{
    char q = p->s[p->i++];
    tl_strbuf_put(&p->out, "\"", 1);
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == (unsigned char)q) {
            p->i++;
            tl_strbuf_put(&p->out, "\"", 1);
            return 0;
        }
        if (c < 0x20)
            return fail(p, "control character or line break inside a string");
        if (c == '"') {              /* inside a '...' string */
            tl_strbuf_put(&p->out, "\\\"", 2);
            p->i++;
            continue;
        }
        if (c != '\\') {
            tl_strbuf_put(&p->out, p->s + p->i, 1);
            p->i++;
            continue;
        }
        if (p->i + 1 >= p->len)
            return fail(p, "unterminated string");
        char x = p->s[p->i + 1];
        p->i += 2;
        switch (x) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': {
            char esc[2] = {'\\', x};
            tl_strbuf_put(&p->out, esc, 2);
            break;
        }
        case '\'':
            tl_strbuf_put(&p->out, "'", 1);
            break;
        case 'u':
            if (p->i + 4 > p->len)
                return fail(p, "bad \\u escape");
            for (int k = 0; k < 4; k++)
                if (!strchr("0123456789abcdefABCDEF", p->s[p->i + k]) || !p->s[p->i + k])
                    return fail(p, "bad \\u escape");
            tl_strbuf_puts(&p->out, "\\u");
            tl_strbuf_put(&p->out, p->s + p->i, 4);
            p->i += 4;
            break;
        case 'x':
            if (p->i + 2 > p->len || !p->s[p->i] || !p->s[p->i + 1] ||
                !strchr("0123456789abcdefABCDEF", p->s[p->i]) ||
                !strchr("0123456789abcdefABCDEF", p->s[p->i + 1]))
                return fail(p, "bad \\x escape");
            tl_strbuf_puts(&p->out, "\\u00");
            tl_strbuf_put(&p->out, p->s + p->i, 2);
            p->i += 2;
            break;
        default:
            return fail(p, "unsupported escape in a string");
        }
    }
    return fail(p, "unterminated string");
}

/* JS number (.5, 5., -1e-3) re-emitted as a JSON number. */
static int parse_number(jsp *p)
{
    if (peek(p) == '-') {
        tl_strbuf_put(&p->out, "-", 1);
        p->i++;
    }
    size_t a = p->i;
    while (is_digit(peek(p)))
        p->i++;
    size_t int_len = p->i - a;
    if (int_len > 1 && p->s[a] == '0')
        return fail(p, "number with a leading zero (octal or hex literals are not data)");
    size_t f = 0, flen = 0;
    if (peek(p) == '.') {
        p->i++;
        f = p->i;
        while (is_digit(peek(p)))
            p->i++;
        flen = p->i - f;
    }
    if (!int_len && !flen)
        return fail(p, "malformed number");
    if (int_len)
        tl_strbuf_put(&p->out, p->s + a, int_len);
    else
        tl_strbuf_put(&p->out, "0", 1);
    if (flen) {
        tl_strbuf_put(&p->out, ".", 1);
        tl_strbuf_put(&p->out, p->s + f, flen);
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        size_t x = p->i++;
        if (peek(p) == '+' || peek(p) == '-')
            p->i++;
        if (!is_digit(peek(p)))
            return fail(p, "malformed exponent");
        while (is_digit(peek(p)))
            p->i++;
        tl_strbuf_put(&p->out, p->s + x, p->i - x);
    }
    if (is_ident_start(peek(p)) || is_digit(peek(p)))
        return fail(p, "malformed number");
    return 0;
}

static int parse_ident(jsp *p, size_t *at, size_t *n)
{
    *at = p->i;
    while (p->i < p->len && (is_ident_start(peek(p)) || is_digit(peek(p))))
        p->i++;
    *n = p->i - *at;
    return 0;
}

static int ident_is(const jsp *p, size_t at, size_t n, const char *w)
{
    return n == strlen(w) && !memcmp(p->s + at, w, n);
}

static int parse_container(jsp *p, char open)
{
    char close = open == '{' ? '}' : ']';
    if (++p->depth > JSP_MAX_DEPTH)
        return fail(p, "nesting too deep");
    p->i++;
    tl_strbuf_put(&p->out, &open, 1);
    skip_ws(p);
    if (peek(p) == close) {
        p->i++;
        tl_strbuf_put(&p->out, &close, 1);
        p->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (open == '{') {
            int c = peek(p);
            if (c == '"' || c == '\'') {
                if (parse_string(p))
                    return -1;
            } else if (is_ident_start(c)) {
                size_t at, n;
                parse_ident(p, &at, &n);
                tl_strbuf_put(&p->out, "\"", 1);
                tl_strbuf_put(&p->out, p->s + at, n);
                tl_strbuf_put(&p->out, "\"", 1);
            } else if (is_digit(c)) {
                size_t at = p->i;
                while (is_digit(peek(p)))
                    p->i++;
                tl_strbuf_put(&p->out, "\"", 1);
                tl_strbuf_put(&p->out, p->s + at, p->i - at);
                tl_strbuf_put(&p->out, "\"", 1);
            } else {
                return fail(p, "expected a property name");
            }
            skip_ws(p);
            if (peek(p) != ':')
                return fail(p, "expected ':' after a property name");
            p->i++;
            tl_strbuf_put(&p->out, ":", 1);
        }
        if (parse_value(p))
            return -1;
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            p->i++;
            skip_ws(p);
            if (peek(p) == close) {       /* trailing comma */
                p->i++;
                break;
            }
            tl_strbuf_put(&p->out, ",", 1);
            continue;
        }
        if (c == close) {
            p->i++;
            break;
        }
        return fail(p, open == '{' ? "expected ',' or '}' in an object"
                                   : "expected ',' or ']' in an array");
    }
    tl_strbuf_put(&p->out, &close, 1);
    p->depth--;
    return 0;
}

static int parse_value(jsp *p)
{
    skip_ws(p);
    int c = peek(p);
    if (c < 0)
        return fail(p, "unexpected end of the module");
    if (c == '{' || c == '[')
        return parse_container(p, (char)c);
    if (c == '"' || c == '\'')
        return parse_string(p);
    if (c == '-' || c == '.' || is_digit(c))
        return parse_number(p);
    if (c == '!') {
        p->i++;
        if (peek(p) == '0')
            tl_strbuf_puts(&p->out, "true");
        else if (peek(p) == '1')
            tl_strbuf_puts(&p->out, "false");
        else
            return fail(p, "unsupported expression after '!'");
        p->i++;
        return 0;
    }
    if (is_ident_start(c)) {
        size_t at, n;
        parse_ident(p, &at, &n);
        if (ident_is(p, at, n, "true") || ident_is(p, at, n, "false") ||
            ident_is(p, at, n, "null")) {
            tl_strbuf_put(&p->out, p->s + at, n);
            return 0;
        }
        if (ident_is(p, at, n, "void")) {
            skip_ws(p);
            if (peek(p) != '0')
                return fail(p, "unsupported expression after 'void'");
            p->i++;
            tl_strbuf_puts(&p->out, "null");
            return 0;
        }
        if (ident_is(p, at, n, "NaN") || ident_is(p, at, n, "Infinity"))
            return fail(p, "non-finite number literal");
        return fail(p, "an expression that is not a literal");
    }
    return fail(p, "unexpected character");
}

/* Start of the value exported by the module: after "exports=" (browserify,
 * CommonJS) or "export default". Occurrences not followed by a literal
 * (module.exports=e()) are skipped. */
static int find_export(const char *s, size_t len, size_t *at)
{
    static const char *const keys[] = {"exports", "export default"};
    size_t best = (size_t)-1;
    for (int k = 0; k < 2; k++) {
        size_t kl = strlen(keys[k]);
        for (size_t i = 0; i + kl <= len; i++) {
            if (memcmp(s + i, keys[k], kl))
                continue;
            size_t j = i + kl;
            while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
                j++;
            if (k == 0) {
                if (j >= len || s[j] != '=' || (j + 1 < len && s[j + 1] == '='))
                    continue;
                j++;
                while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
                    j++;
            }
            if (j < len && (s[j] == '{' || s[j] == '[' || s[j] == '"' || s[j] == '\'')) {
                if (j < best)
                    best = j;
                break;
            }
        }
    }
    if (best == (size_t)-1)
        return -1;
    *at = best;
    return 0;
}

/* After the value: end of file or the wrapper's closing punctuation. */
static int trailer_ok(const char *s, size_t len, size_t i)
{
    jsp p = {.s = s, .len = len, .i = i};
    skip_ws(&p);
    return p.i >= len || strchr("});,", s[p.i]);
}

char *weights_tfjs_js_to_json(const char *name, const char *src, size_t len, size_t *value_at,
                              size_t *value_end, tl_err *e)
{
    size_t at;
    if (find_export(src, len, &at)) {
        tl_errf(e, TL_EFORMAT,
                "%s: malformed JS wrapper: no 'exports=' or 'export default' followed by a literal",
                name);
        return NULL;
    }
    jsp p = {.s = src, .len = len, .i = at};
    if (parse_value(&p) || p.out.oom) {
        free(p.out.s);
        if (p.out.oom)
            tl_errf(e, TL_ENOMEM, "%s: out of memory converting the JS module", name);
        else
            tl_errf(e, TL_EFORMAT, "%s: malformed JS wrapper: %s at byte %zu", name, p.err, p.i);
        return NULL;
    }
    if (!trailer_ok(src, len, p.i)) {
        free(p.out.s);
        tl_errf(e, TL_EFORMAT, "%s: malformed JS wrapper: unexpected text after the value at byte %zu",
                name, p.i);
        return NULL;
    }
    if (value_at)
        *value_at = at;
    if (value_end)
        *value_end = p.i;
    return p.out.s;
}


/* ---- shard modules: one exported base64 string ------------------------------------ */

int weights_tfjs__js_shard_string(const char *path, const char *s, size_t len, size_t *at,
                                  size_t *n, tl_err *e)
{
    size_t v;
    if (find_export(s, len, &v) || (s[v] != '"' && s[v] != '\''))
        return tl_errf(e, TL_EFORMAT,
                       "%s: malformed JS wrapper: no exported string of base64 weight data", path);
    char q = s[v];
    const char *start = s + v + 1;
    const char *end = memchr(start, q, len - v - 1);
    if (!end)
        return tl_errf(e, TL_EFORMAT, "%s: malformed JS wrapper: unterminated base64 string", path);
    if (!trailer_ok(s, len, (size_t)(end - s) + 1))
        return tl_errf(e, TL_EFORMAT,
                       "%s: malformed JS wrapper: unexpected text after the base64 string", path);
    *at = v + 1;
    *n = (size_t)(end - start);
    return 0;
}

size_t weights_tfjs__base64_valid_prefix(const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && b64_value((unsigned char)s[k]) >= 0)
        k++;
    return k;
}
