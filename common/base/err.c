#include "common/base/err.h"

#include <stdarg.h>
#include <stdio.h>

int tl_errf(tl_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *tl_strerror(int code)
{
    switch (code) {
    case TL_OK: return "ok";
    case TL_EINVAL: return "invalid input";
    case TL_ENOMEM: return "out of memory";
    case TL_EIO: return "i/o error";
    case TL_EFORMAT: return "bad file format";
    case TL_ESHAPE: return "shape mismatch";
    case TL_ENOTFOUND: return "not found";
    case TL_ESTOPPED: return "stopped";
    case TL_ETIMEDOUT: return "timed out";
    default: return "unknown error";
    }
}
