/* Internal to the tfjs reader (weights_tfjs.c, weights_tfjs_js.c): the JS
 * module wrappers of nsfwjs's files. The two decoders tests and fuzzers
 * call, weights_tfjs_js_to_json and weights_tfjs_base64_decode, are public
 * in weights_tfjs.h; what is here has the internal prefix weights_tfjs__. */
#ifndef TLSWEEP_WEIGHTS_TFJS_JS_H
#define TLSWEEP_WEIGHTS_TFJS_JS_H

#include <stddef.h>

#include "common/base/err.h"
#include "common/weights/weights_tfjs.h"

/* The base64 text of a shard module (group1-shard1of2.min.js): the string
 * literal after "exports=" / "export default", followed only by the
 * wrapper's closing punctuation. Returns 0 with s[*at, *at + *n) the text
 * between the quotes, or TL_EFORMAT with e naming path. */
int weights_tfjs__js_shard_string(const char *path, const char *s, size_t len, size_t *at,
                                  size_t *n, tl_err *e);

/* Characters of s[0, n) before the first one outside the base64 alphabet:
 * where a bad shard goes wrong. */
size_t weights_tfjs__base64_valid_prefix(const char *s, size_t n);

#endif
