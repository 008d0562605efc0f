/*
 * infer_request.c - the KServe v2 infer request parser (kiln_v2_parse_infer,
 * see protocol.h): one pass over the JSON text, straight into tensors.
 *
 * Why not jansson: building a jansson tree for a small request (every
 * number, string and object a malloc, then a walk, then json_decref) was a
 * fifth of kiln serve's CPU time on the one-Add model of `make bench-serve`:
 * perf put kiln_v2_parse_infer at 19% of the server's samples (json_loadb
 * 10%, the tree's frees and our strdup/walk the rest); this parser takes
 * 5.5% for the same request.  It allocates only what it hands out: the
 * tensors, their names, the id and the output list.
 *
 * It accepts exactly the JSON that jansson (JSON_REJECT_DUPLICATES) accepts:
 * strict number grammar, integers within int64, finite reals, valid UTF-8,
 * no control characters or \u0000 in strings, no duplicate keys (checked
 * for the keys this parser reads; the fuzz target compares it with jansson).
 * As with jansson, a syntax error anywhere wins over any other error.
 *
 * The members of an input may come in any order.  When name, shape and
 * datatype come before "data" (as every client writes them), the data is
 * parsed in place into the tensor; otherwise the data's span is remembered
 * and parsed when the object ends.  A semantic error inside data parsed in
 * place (a string in an FP32 tensor) is kept and reported when the object
 * ends, as parameters.binary_data_size may still come and take precedence.
 *
 * Sizes are checked before they are allocated: a shape's product is
 * overflow-checked and must fit the bytes the request can carry (one
 * element takes at least two bytes of JSON, or its size in binary data).
 */
#include "serve/protocol.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "serve/model_config.h"

#define MAX_TENSORS 256
#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define KEY_MAX 32     /* longer keys are none this parser reads */

/* Nesting depths as jansson counts them (the request object is 1), for
 * its limit of MAX_DEPTH. */
enum {
    DEPTH_REQUEST = 1, /* the request object */
    DEPTH_MEMBER,      /* its members' values: inputs, outputs, parameters */
    DEPTH_TENSOR,      /* an input or output object; a request parameter's value */
    DEPTH_FIELD,       /* an input's or output's members' values: shape, data, parameters */
    DEPTH_PARAM,       /* a value in an input's or output's parameters, a shape element */
};

typedef enum { ERR_NONE, ERR_SYNTAX, ERR_SEMANTIC, ERR_MEMORY } err_kind_t;

/* The cursor over the JSON part and the binary part after it. */
typedef struct parser {
    const char *start, *p, *end;
    const char *bin;
    size_t bin_len, bin_off;
    err_kind_t err_kind;
    char err[512];
} parser_t;

/* A string token: raw bytes between the quotes, escapes undecoded. */
typedef struct str_tok {
    const char *raw;
    size_t len;
    bool escaped;
} str_tok_t;

/* A number token. */
typedef struct num_tok {
    bool is_int;   /* no fraction or exponent */
    int64_t i;     /* when is_int */
    double d;      /* always */
} num_tok_t;

/* ---- errors -------------------------------------------------------------- */

static bool syntax_error(parser_t *ps, const char *what)
{
    if (ps->err_kind != ERR_NONE)
        return false;
    int line = 1, col = 1;
    for (const char *c = ps->start; c < ps->p && c < ps->end; c++) {
        if (*c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(ps->err, sizeof ps->err, "malformed JSON at line %d column %d: %s", line, col, what);
    ps->err_kind = ERR_SYNTAX;
    return false;
}

static bool semantic_error(parser_t *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool semantic_error(parser_t *ps, const char *fmt, ...)
{
    if (ps->err_kind != ERR_NONE)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, sizeof ps->err, fmt, ap);
    va_end(ap);
    ps->err_kind = ERR_SEMANTIC;
    return false;
}

static bool memory_error(parser_t *ps)
{
    if (ps->err_kind == ERR_NONE) {
        snprintf(ps->err, sizeof ps->err, "out of memory parsing the request");
        ps->err_kind = ERR_MEMORY;
    }
    return false;
}

/* ---- tokens -------------------------------------------------------------- */

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

/* The next significant character, or 0 at the end (a NUL byte in the
 * text reads as 1, which no JSON token starts with). */
static char peek(parser_t *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return 0;
    return *ps->p ? *ps->p : 1;
}

static bool expect(parser_t *ps, char c)
{
    if (peek(ps) != c) {
        char what[32];
        snprintf(what, sizeof what, "'%c' expected", c);
        return syntax_error(ps, ps->p < ps->end ? what : "unexpected end of input");
    }
    ps->p++;
    return true;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Checks the \u escape at s (pointing at 'u'); returns the bytes it spans
 * from the backslash (6, or 12 for a surrogate pair) or 0 when invalid. */
static size_t unicode_escape(const char *s, const char *end, unsigned *cp_out, const char **why)
{
    if (end - s < 5 || hex4(s + 1) < 0) {
        *why = "invalid \\u escape";
        return 0;
    }
    unsigned cp = (unsigned)hex4(s + 1);
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        *why = "invalid Unicode: lone low surrogate";
        return 0;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (end - s < 11 || s[5] != '\\' || s[6] != 'u' || hex4(s + 7) < 0) {
            *why = "invalid Unicode: lone high surrogate";
            return 0;
        }
        unsigned lo = (unsigned)hex4(s + 7);
        if (lo < 0xDC00 || lo > 0xDFFF) {
            *why = "invalid Unicode: lone high surrogate";
            return 0;
        }
        *cp_out = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        return 12;
    }
    if (cp == 0) {
        *why = "\\u0000 is not allowed in a string";
        return 0;
    }
    *cp_out = cp;
    return 6;
}

/* Scans a string token at the cursor (which is at '"'), validating it. */
static bool lex_string(parser_t *ps, str_tok_t *out)
{
    const char *s = ++ps->p;
    out->escaped = false;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            out->raw = s;
            out->len = (size_t)(ps->p - s);
            ps->p++;
            return true;
        }
        if (c < 0x20)
            return syntax_error(ps, "control character in a string");
        if (c == '\\') {
            out->escaped = true;
            if (ps->end - ps->p < 2)
                break;
            char e = ps->p[1];
            if (e == 'u') {
                unsigned cp;
                const char *why;
                size_t n = unicode_escape(ps->p + 1, ps->end, &cp, &why);
                if (!n)
                    return syntax_error(ps, why);
                ps->p += n;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                ps->p += 2;
            } else {
                return syntax_error(ps, "invalid escape in a string");
            }
            continue;
        }
        size_t n = utf8_len((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
        if (!n)
            return syntax_error(ps, "invalid UTF-8 in a string");
        ps->p += n;
    }
    return syntax_error(ps, "unexpected end of input in a string");
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | cp >> 6);
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | cp >> 12);
        dst[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | cp >> 18);
    dst[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    dst[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes a validated string token into dst (tok->len + 1 bytes suffice:
 * no escape decodes longer than it is written); NUL-terminates. */
static size_t decode_string(const str_tok_t *tok, char *dst)
{
    if (!tok->escaped) {
        memcpy(dst, tok->raw, tok->len);
        dst[tok->len] = 0;
        return tok->len;
    }
    size_t o = 0;
    const char *s = tok->raw, *end = tok->raw + tok->len;
    while (s < end) {
        if (*s != '\\') {
            dst[o++] = *s++;
            continue;
        }
        char e = s[1];
        if (e == 'u') {
            unsigned cp = 0;
            const char *why;
            s += unicode_escape(s + 1, end, &cp, &why);
            o += put_utf8(dst + o, cp);
            continue;
        }
        dst[o++] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        s += 2;
    }
    dst[o] = 0;
    return o;
}

/* A decoded string token in a new malloc'd string (caller frees). */
static char *dup_string(parser_t *ps, const str_tok_t *tok)
{
    char *s = malloc(tok->len + 1);
    if (!s) {
        memory_error(ps);
        return NULL;
    }
    decode_string(tok, s);
    return s;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reals that are not exact in the fast path go through strtod on a
 * NUL-terminated copy (the body is not NUL-terminated). */
static bool slow_real(parser_t *ps, const char *s, size_t n, double *out)
{
    char stack[128];
    char *buf = n < sizeof stack ? stack : malloc(n + 1);
    if (!buf)
        return memory_error(ps);
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    *out = strtod(buf, NULL);
    bool overflow = errno == ERANGE && isinf(*out);
    if (buf != stack)
        free(buf);
    return overflow ? syntax_error(ps, "real number overflow") : true;
}

/* Scans a number token (JSON's grammar).  Integers must fit int64 (as in
 * jansson).  Reals with at most 19 significant digits and a power of ten
 * within 22 are exact as one double multiplication or division (Clinger's
 * fast path); others take strtod. */
static bool lex_number(parser_t *ps, num_tok_t *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *s = ps->p, *c = s, *end = ps->end;
    bool neg = c < end && *c == '-';
    if (neg)
        c++;
    if (c >= end || !is_digit(*c))
        return syntax_error(ps, "invalid number");
    uint64_t mant = 0;
    int digits = 0, exp10 = 0;
    if (*c == '0') {
        c++;
    } else {
        for (; c < end && is_digit(*c); c++) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*c - '0');
                digits++;
            } else {
                digits++;
                exp10++;
            }
        }
    }
    bool is_int = true;
    if (c < end && *c == '.') {
        is_int = false;
        c++;
        if (c >= end || !is_digit(*c))
            return syntax_error(ps, "invalid number");
        for (; c < end && is_digit(*c); c++) {
            if (mant == 0 && *c == '0') {
                exp10--;
            } else if (digits < 19) {
                mant = mant * 10 + (uint64_t)(*c - '0');
                digits++;
                exp10--;
            } else {
                digits++;
            }
        }
    }
    if (c < end && (*c == 'e' || *c == 'E')) {
        is_int = false;
        c++;
        bool eneg = c < end && *c == '-';
        if (c < end && (*c == '-' || *c == '+'))
            c++;
        if (c >= end || !is_digit(*c))
            return syntax_error(ps, "invalid number");
        int e = 0;
        for (; c < end && is_digit(*c); c++)
            if (e < 100000)
                e = e * 10 + (*c - '0');
        exp10 += eneg ? -e : e;
    }
    ps->p = c;
    out->is_int = is_int;
    out->i = 0;
    if (is_int) {
        if (digits > 19 || mant > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
            return syntax_error(ps, neg ? "too big negative integer" : "too big integer");
        out->i = neg ? (int64_t)(0 - mant) : (int64_t)mant;
        out->d = (double)out->i;
        return true;
    }
    if (digits <= 19 && mant < (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10[-exp10] : d * pow10[exp10];
        out->d = neg ? -d : d;
        return true;
    }
    return slow_real(ps, s, (size_t)(c - s), &out->d);
}

static bool lex_literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
        return syntax_error(ps, "invalid token");
    ps->p += n;
    return true;
}

/* Reads an object key and the ':' after it into key (decoded, truncated
 * to KEY_MAX - 1 bytes; *long_key says so). */
static bool read_key(parser_t *ps, char key[KEY_MAX], bool *long_key)
{
    if (peek(ps) != '"')
        return syntax_error(ps, ps->p < ps->end ? "string or '}' expected" : "unexpected end of input");
    str_tok_t tok;
    if (!lex_string(ps, &tok))
        return false;
    *long_key = tok.len >= KEY_MAX;
    if (*long_key) {
        key[0] = 0;
    } else {
        decode_string(&tok, key);
    }
    return expect(ps, ':');
}

static bool duplicate_key(parser_t *ps, const char *key)
{
    char what[64];
    snprintf(what, sizeof what, "duplicate object key '%s'", key);
    return syntax_error(ps, what);
}

/* Marks a key as seen; a second time is a syntax error (as jansson's
 * JSON_REJECT_DUPLICATES). */
static bool once(parser_t *ps, unsigned *seen, unsigned bit, const char *key)
{
    if (*seen & bit)
        return duplicate_key(ps, key);
    *seen |= bit;
    return true;
}

static bool skip_value(parser_t *ps, int depth);

/* Iterates the members of an object: calls member() for each key (the
 * cursor before its value), which must consume the value. */
typedef bool (*member_fn)(parser_t *ps, const char *key, bool long_key, void *ctx);

static bool walk_object(parser_t *ps, int depth, member_fn member, void *ctx)
{
    if (depth > MAX_DEPTH)
        return syntax_error(ps, "maximum parsing depth reached");
    if (!expect(ps, '{'))
        return false;
    if (peek(ps) == '}') {
        ps->p++;
        return true;
    }
    for (;;) {
        char key[KEY_MAX];
        bool long_key;
        if (!read_key(ps, key, &long_key) || !member(ps, key, long_key, ctx))
            return false;
        char c = peek(ps);
        ps->p++;
        if (c == '}')
            return true;
        if (c != ',') {
            ps->p--;
            return syntax_error(ps, c ? "',' or '}' expected" : "unexpected end of input");
        }
    }
}

static bool skip_member(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    return skip_value(ps, *(int *)ctx + 1);
}

/* Iterates the elements of an array: element() consumes each. */
typedef bool (*element_fn)(parser_t *ps, size_t index, void *ctx);

static bool walk_array(parser_t *ps, int depth, element_fn element, void *ctx)
{
    if (depth > MAX_DEPTH)
        return syntax_error(ps, "maximum parsing depth reached");
    if (!expect(ps, '['))
        return false;
    if (peek(ps) == ']') {
        ps->p++;
        return true;
    }
    for (size_t i = 0;; i++) {
        if (!element(ps, i, ctx))
            return false;
        char c = peek(ps);
        ps->p++;
        if (c == ']')
            return true;
        if (c != ',') {
            ps->p--;
            return syntax_error(ps, c ? "',' or ']' expected" : "unexpected end of input");
        }
    }
}

static bool skip_element(parser_t *ps, size_t index, void *ctx)
{
    return skip_value(ps, *(int *)ctx + 1);
}

/* Validates and steps over any value. */
static bool skip_value(parser_t *ps, int depth)
{
    str_tok_t s;
    num_tok_t n;
    switch (peek(ps)) {
    case '{': return walk_object(ps, depth, skip_member, &depth);
    case '[': return walk_array(ps, depth, skip_element, &depth);
    case '"': return lex_string(ps, &s);
    case 't': return lex_literal(ps, "true");
    case 'f': return lex_literal(ps, "false");
    case 'n': return lex_literal(ps, "null");
    case 0: return syntax_error(ps, "unexpected end of input");
    default: return lex_number(ps, &n);
    }
}

/* ---- tensor data ----------------------------------------------------------- */

/* Element i of a numeric or BOOL tensor is of the wrong JSON type. */
static bool type_error(parser_t *ps, kiln_dtype_t dt, int64_t i, const char *name)
{
    if (dt == KILN_DTYPE_BOOL)
        return semantic_error(ps, "input '%s': BOOL data must be true or false", name);
    if (dt == KILN_DTYPE_FLOAT32 || dt == KILN_DTYPE_FLOAT64 || dt == KILN_DTYPE_FLOAT16 || dt == KILN_DTYPE_BFLOAT16)
        return semantic_error(ps, "input '%s': data element %lld is not a number", name, (long long)i);
    if (dt == KILN_DTYPE_UINT64)
        return semantic_error(ps, "input '%s': data element %lld is not a non-negative integer", name, (long long)i);
    return semantic_error(ps, "input '%s': data element %lld is not an integer", name, (long long)i);
}

/* The scalar at the cursor, stored as element i of t (t's dtype decides
 * what it may be).  Messages as a client needs them: the input and the
 * element. */
static bool store_scalar(parser_t *ps, kiln_tensor_t *t, int64_t i, const char *name)
{
    char c = peek(ps);
    kiln_dtype_t dt = t->dtype;
    if (dt == KILN_DTYPE_STRING) {
        if (c != '"')
            return skip_value(ps, DEPTH_PARAM) && semantic_error(ps, "input '%s': BYTES data must be strings", name);
        str_tok_t tok;
        if (!lex_string(ps, &tok))
            return false;
        return (((char **)t->data)[i] = dup_string(ps, &tok)) != NULL;
    }
    if (c == 't' || c == 'f') {
        if (!lex_literal(ps, c == 't' ? "true" : "false"))
            return false;
        if (dt == KILN_DTYPE_BOOL) {
            ((uint8_t *)t->data)[i] = c == 't';
            return true;
        }
    } else if (c == '-' || is_digit(c)) {
        num_tok_t n;
        if (!lex_number(ps, &n))
            return false;
        switch (dt) {
        case KILN_DTYPE_FLOAT32: ((float *)t->data)[i] = (float)n.d; return true;
        case KILN_DTYPE_FLOAT64: ((double *)t->data)[i] = n.d; return true;
        case KILN_DTYPE_FLOAT16: case KILN_DTYPE_BFLOAT16: kiln_tensor_set_f64(t, i, n.d); return true;
        default: break;
        }
        if (!n.is_int)
            return type_error(ps, dt, i, name);
        int64_t lo, hi;
        switch (dt) {
        case KILN_DTYPE_BOOL: ((uint8_t *)t->data)[i] = n.i != 0; return true;
        case KILN_DTYPE_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
        case KILN_DTYPE_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
        case KILN_DTYPE_INT32: lo = INT32_MIN; hi = INT32_MAX; break;
        case KILN_DTYPE_UINT8: lo = 0; hi = UINT8_MAX; break;
        case KILN_DTYPE_UINT16: lo = 0; hi = UINT16_MAX; break;
        case KILN_DTYPE_UINT32: lo = 0; hi = UINT32_MAX; break;
        case KILN_DTYPE_UINT64:
            if (n.i < 0)
                return semantic_error(ps, "input '%s': data element %lld is not a non-negative integer", name,
                                      (long long)i);
            ((uint64_t *)t->data)[i] = (uint64_t)n.i;
            return true;
        default: ((int64_t *)t->data)[i] = n.i; return true;
        }
        if (n.i < lo || n.i > hi)
            return semantic_error(ps, "input '%s': value %lld is out of range for %s", name, (long long)n.i,
                                  kiln_dtype_to_kserve_type(dt));
        kiln_tensor_set_f64(t, i, (double)n.i);
        return true;
    } else if (!skip_value(ps, DEPTH_PARAM)) { /* an error below: prefer_syntax_error recounts depths */
        return false;
    }
    /* a string, null or object, or a boolean where a number belongs */
    return type_error(ps, dt, i, name);
}

/* Flat or nested arrays of scalars, stored in row-major order. */
static bool store_data(parser_t *ps, kiln_tensor_t *t, int64_t *pos, const char *name, int depth)
{
    if (depth > KILN_MAX_RANK + 1)
        return semantic_error(ps, "input '%s': data is nested too deeply", name);
    if (peek(ps) != '[') {
        if (*pos >= t->count)
            return semantic_error(ps, "input '%s': data has more elements than its shape holds (%lld)", name,
                                  (long long)t->count);
        return store_scalar(ps, t, (*pos)++, name);
    }
    ps->p++;
    if (peek(ps) == ']') {
        ps->p++;
        return true;
    }
    for (;;) {
        if (!store_data(ps, t, pos, name, depth + 1))
            return false;
        char c = peek(ps);
        ps->p++;
        if (c == ']')
            return true;
        if (c != ',') {
            ps->p--;
            return syntax_error(ps, c ? "',' or ']' expected" : "unexpected end of input");
        }
    }
}

/* Binary tensor data: raw elements, or BYTES as 4-byte little-endian
 * lengths each followed by the bytes. */
static bool fill_binary(parser_t *ps, kiln_tensor_t *t, const char *bytes, size_t size, const char *name)
{
    if (t->dtype != KILN_DTYPE_STRING) {
        if (size)
            memcpy(t->data, bytes, size);
        if (t->dtype == KILN_DTYPE_BOOL)
            for (int64_t i = 0; i < t->count; i++)
                ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
        return true;
    }
    size_t off = 0;
    for (int64_t i = 0; i < t->count; i++) {
        uint32_t n;
        if (size - off < 4)
            return semantic_error(ps, "input '%s': BYTES binary data ends inside element %lld", name, (long long)i);
        memcpy(&n, bytes + off, 4);
        off += 4;
        if (n > size - off)
            return semantic_error(ps, "input '%s': BYTES element %lld runs past the binary data", name, (long long)i);
        char *s = malloc((size_t)n + 1);
        if (!s)
            return memory_error(ps);
        memcpy(s, bytes + off, n);
        s[n] = 0;
        ((char **)t->data)[i] = s;
        off += n;
    }
    if (off != size)
        return semantic_error(ps, "input '%s': %zu bytes of binary data are left over", name, size - off);
    return true;
}

/* ---- one input --------------------------------------------------------------- */

/* What the members of one input object said, checked when it ends. */
typedef struct input_scan {
    int index;
    unsigned seen;               /* KEY_* bits */
    char *name;                  /* decoded, malloc'd; NULL when not a string */
    bool shape_ok;               /* an array */
    size_t rank;                 /* elements in shape (may exceed KILN_MAX_RANK) */
    int64_t dims[KILN_MAX_RANK];
    long bad_dim;                /* first element that is not a non-negative integer, or -1 */
    bool dtype_ok;               /* a string */
    char dtype_str[32];
    kiln_dtype_t dtype;
    bool has_bin, bin_ok;
    int64_t bin_size;
    const char *data_at;         /* the data value's first byte, or NULL */
    kiln_tensor_t *t;            /* filled from data already (in place) */
    char *data_error;            /* a semantic error that in-place data met */
} input_scan_t;

enum { KEY_NAME = 1, KEY_SHAPE = 2, KEY_DATATYPE = 4, KEY_DATA = 8, KEY_PARAMETERS = 16, KEY_BDS = 32 };

static bool shape_element(parser_t *ps, size_t index, void *ctx)
{
    input_scan_t *in = ctx;
    in->rank = index + 1;
    if (peek(ps) != '-' && !is_digit(peek(ps))) {
        if (in->bad_dim < 0)
            in->bad_dim = (long)index;
        return skip_value(ps, DEPTH_PARAM);
    }
    num_tok_t n;
    if (!lex_number(ps, &n))
        return false;
    if ((!n.is_int || n.i < 0) && in->bad_dim < 0)
        in->bad_dim = (long)index;
    if (index < KILN_MAX_RANK)
        in->dims[index] = n.i;
    return true;
}

static bool input_param(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    input_scan_t *in = ctx;
    if (long_key || strcmp(key, "binary_data_size"))
        return skip_value(ps, DEPTH_PARAM);
    if (!once(ps, &in->seen, KEY_BDS, key))
        return false;
    in->has_bin = true;
    char c = peek(ps);
    if (c != '-' && !is_digit(c))
        return skip_value(ps, DEPTH_PARAM);
    num_tok_t n;
    if (!lex_number(ps, &n))
        return false;
    in->bin_ok = n.is_int && n.i >= 0;
    in->bin_size = n.i;
    return true;
}

/* Checks name, shape and datatype in jansson-era order; true when a tensor
 * may be made. */
static bool check_header(parser_t *ps, input_scan_t *in)
{
    if (!in->name)
        return semantic_error(ps, "inputs[%d]: 'name' must be a string", in->index);
    if (!in->shape_ok)
        return semantic_error(ps, "input '%s': 'shape' must be an array of integers", in->name);
    if (!in->dtype_ok)
        return semantic_error(ps, "input '%s': 'datatype' must be a string", in->name);
    if (in->dtype == KILN_DTYPE_UNDEFINED)
        return semantic_error(ps, "input '%s': unknown datatype '%s'", in->name, in->dtype_str);
    if (in->rank > KILN_MAX_RANK)
        return semantic_error(ps, "input '%s': shape has %zu dims, at most %d are supported", in->name, in->rank,
                              KILN_MAX_RANK);
    if (in->bad_dim >= 0)
        return semantic_error(ps, "input '%s': shape[%ld] must be a non-negative integer", in->name, in->bad_dim);
    if (kiln_shape_count((int)in->rank, in->dims, kiln_dtype_size(in->dtype)) < 0)
        return semantic_error(ps, "input '%s': shape is too large", in->name);
    return true;
}

/* A tensor for the checked header, after checking that `room` bytes of
 * request could hold its elements at `per_element` bytes each. */
static kiln_tensor_t *make_tensor(parser_t *ps, input_scan_t *in, size_t room, size_t per_element)
{
    int64_t count = kiln_shape_count((int)in->rank, in->dims, 1);
    if (per_element && (uint64_t)count > room / per_element + 1) {
        semantic_error(ps, "input '%s': shape holds %lld elements, more than the request carries", in->name,
                       (long long)count);
        return NULL;
    }
    kiln_tensor_t *t = in->dtype == KILN_DTYPE_STRING ? kiln_tensor_create(in->dtype, (int)in->rank, in->dims)
                                                      : kiln_tensor_new_uninit(in->dtype, (int)in->rank, in->dims);
    if (!t)
        semantic_error(ps, "input '%s': %s", in->name, kiln_last_error());
    return t;
}

/* Parses the data value at the cursor into a new in->t; on a semantic
 * error the tensor is dropped and the message returned in *err. */
static bool parse_data(parser_t *ps, input_scan_t *in)
{
    in->t = make_tensor(ps, in, (size_t)(ps->end - ps->p), 2);
    if (!in->t)
        return false;
    int64_t pos = 0;
    if (store_data(ps, in->t, &pos, in->name, 0) && pos != in->t->count)
        semantic_error(ps, "input '%s': shape holds %lld elements, data has %lld", in->name,
                       (long long)in->t->count, (long long)pos);
    if (ps->err_kind == ERR_NONE)
        return true;
    kiln_tensor_free(in->t);
    in->t = NULL;
    return false;
}

static bool input_member(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    input_scan_t *in = ctx;
    if (long_key)
        return skip_value(ps, DEPTH_FIELD);
    char c = peek(ps);
    if (!strcmp(key, "name")) {
        if (!once(ps, &in->seen, KEY_NAME, key))
            return false;
        if (c != '"')
            return skip_value(ps, DEPTH_FIELD);
        str_tok_t tok;
        return lex_string(ps, &tok) && (in->name = dup_string(ps, &tok)) != NULL;
    }
    if (!strcmp(key, "shape")) {
        if (!once(ps, &in->seen, KEY_SHAPE, key))
            return false;
        in->shape_ok = c == '[';
        return in->shape_ok ? walk_array(ps, DEPTH_FIELD, shape_element, in) : skip_value(ps, DEPTH_FIELD);
    }
    if (!strcmp(key, "datatype")) {
        if (!once(ps, &in->seen, KEY_DATATYPE, key))
            return false;
        in->dtype_ok = c == '"';
        if (!in->dtype_ok)
            return skip_value(ps, DEPTH_FIELD);
        str_tok_t tok;
        if (!lex_string(ps, &tok))
            return false;
        if (tok.len < sizeof in->dtype_str) {
            decode_string(&tok, in->dtype_str);
            in->dtype = kiln_kserve_type_to_dtype(in->dtype_str);
        } else {
            snprintf(in->dtype_str, sizeof in->dtype_str, "%.*s...", (int)sizeof in->dtype_str - 4, tok.raw);
            in->dtype = KILN_DTYPE_UNDEFINED;
        }
        return true;
    }
    if (!strcmp(key, "parameters")) {
        if (!once(ps, &in->seen, KEY_PARAMETERS, key))
            return false;
        return c == '{' ? walk_object(ps, DEPTH_FIELD, input_param, in) : skip_value(ps, DEPTH_FIELD);
    }
    if (!strcmp(key, "data")) {
        if (!once(ps, &in->seen, KEY_DATA, key))
            return false;
        in->data_at = ps->p;
        /* in place when the header is known and good, the common case */
        if ((in->seen & (KEY_NAME | KEY_SHAPE | KEY_DATATYPE)) == (KEY_NAME | KEY_SHAPE | KEY_DATATYPE) &&
            check_header(ps, in)) {
            if (parse_data(ps, in))
                return true;
            if (ps->err_kind != ERR_SEMANTIC)
                return false;
            in->data_error = strdup(ps->err);
            if (!in->data_error)
                return memory_error(ps);
            ps->p = in->data_at;
        }
        ps->err_kind = ERR_NONE;
        return skip_value(ps, DEPTH_FIELD);
    }
    return skip_value(ps, DEPTH_FIELD);
}

/* The binary part of an input: checks binary_data_size against the shape
 * and the bytes left, then fills a new tensor. */
static bool input_binary(parser_t *ps, input_scan_t *in)
{
    if (!in->bin_ok)
        return semantic_error(ps, "input '%s': binary_data_size must be a non-negative integer", in->name);
    size_t left = ps->bin_len - ps->bin_off;
    if ((uint64_t)in->bin_size > left)
        return semantic_error(ps, "input '%s': binary_data_size %lld exceeds the %zu binary bytes left in the body",
                              in->name, (long long)in->bin_size, left);
    size_t size = (size_t)in->bin_size;
    int64_t count = kiln_shape_count((int)in->rank, in->dims, 1);
    size_t need = (size_t)count * kiln_dtype_size(in->dtype);
    if (in->dtype != KILN_DTYPE_STRING && size != need)
        return semantic_error(ps, "input '%s': binary_data_size is %zu bytes, its shape and datatype need %zu",
                              in->name, size, need);
    if (in->dtype == KILN_DTYPE_STRING && (uint64_t)count > size / 4)
        return semantic_error(ps, "input '%s': BYTES binary data ends inside element %lld", in->name,
                              (long long)(size / 4));
    in->t = make_tensor(ps, in, 0, 0);
    if (!in->t || !fill_binary(ps, in->t, ps->bin + ps->bin_off, size, in->name))
        return false;
    ps->bin_off += size;
    return true;
}

/* Checks a scanned input and completes its tensor. */
static bool finish_input(parser_t *ps, input_scan_t *in)
{
    if (!check_header(ps, in))
        return false;
    if (in->has_bin) {
        kiln_tensor_free(in->t); /* binary data takes precedence over data */
        in->t = NULL;
        return input_binary(ps, in);
    }
    if (!in->data_at)
        return semantic_error(ps, "input '%s': has neither 'data' nor parameters.binary_data_size", in->name);
    if (in->data_error)
        return semantic_error(ps, "%s", in->data_error);
    if (in->t)
        return true;
    /* data came before the header: parse it now (already validated) */
    const char *resume = ps->p;
    ps->p = in->data_at;
    bool ok = parse_data(ps, in);
    ps->p = resume;
    return ok;
}

/* ---- the request ------------------------------------------------------------- */

typedef struct request_scan {
    kiln_v2_request_t *out;
    unsigned seen;
    int cap_inputs;
    int cap_outputs;
    signed char *output_binary;  /* per output: -1 unset, else 0/1 */
    bool inputs_ok;              /* an array */
    char outputs_error[64];      /* reported after the inputs' errors */
} request_scan_t;

enum { KEY_ID = 1, KEY_PARAMS = 2, KEY_INPUTS = 4, KEY_OUTPUTS = 8, KEY_BDO = 16 };

static bool input_element(parser_t *ps, size_t index, void *ctx)
{
    request_scan_t *rs = ctx;
    kiln_v2_request_t *r = rs->out;
    if (index >= MAX_TENSORS)
        return semantic_error(ps, "too many inputs (more than %d)", MAX_TENSORS);
    if (peek(ps) != '{')
        return skip_value(ps, DEPTH_TENSOR) && semantic_error(ps, "inputs[%zu] must be an object", index);
    if (r->n_inputs == rs->cap_inputs) {
        int cap = rs->cap_inputs ? rs->cap_inputs * 2 : 4;
        char **names = realloc(r->input_names, (size_t)cap * sizeof *names);
        if (names)
            r->input_names = names;
        kiln_tensor_t **ts = realloc(r->inputs, (size_t)cap * sizeof *ts);
        if (ts)
            r->inputs = ts;
        if (!names || !ts)
            return memory_error(ps);
        rs->cap_inputs = cap;
    }
    input_scan_t in = {.index = (int)index, .bad_dim = -1};
    bool ok = walk_object(ps, DEPTH_TENSOR, input_member, &in) && finish_input(ps, &in);
    for (int k = 0; ok && k < r->n_inputs; k++)
        if (!strcmp(r->input_names[k], in.name))
            ok = semantic_error(ps, "input '%s' is given twice", in.name);
    free(in.data_error);
    if (!ok) {
        free(in.name);
        kiln_tensor_free(in.t);
        return false;
    }
    r->input_names[r->n_inputs] = in.name;
    r->inputs[r->n_inputs++] = in.t;
    return true;
}

static bool output_param(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    signed char *binary = ctx;
    if (long_key || strcmp(key, "binary_data"))
        return skip_value(ps, DEPTH_PARAM);
    if (*binary >= 0)
        return duplicate_key(ps, key);
    if (peek(ps) == 't') {
        *binary = 1;
        return lex_literal(ps, "true");
    }
    *binary = 0;
    return skip_value(ps, DEPTH_PARAM);
}

typedef struct output_scan {
    unsigned seen;
    char *name;
    signed char binary;
} output_scan_t;

static bool output_member(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    output_scan_t *o = ctx;
    if (long_key)
        return skip_value(ps, DEPTH_FIELD);
    char c = peek(ps);
    if (!strcmp(key, "name")) {
        if (!once(ps, &o->seen, 1, key))
            return false;
        str_tok_t tok;
        return c != '"' ? skip_value(ps, DEPTH_FIELD) : lex_string(ps, &tok) && (o->name = dup_string(ps, &tok)) != NULL;
    }
    if (!strcmp(key, "parameters")) {
        if (!once(ps, &o->seen, 2, key))
            return false;
        return c == '{' ? walk_object(ps, DEPTH_FIELD, output_param, &o->binary) : skip_value(ps, DEPTH_FIELD);
    }
    return skip_value(ps, DEPTH_FIELD);
}

static bool output_element(parser_t *ps, size_t index, void *ctx)
{
    request_scan_t *rs = ctx;
    kiln_v2_request_t *r = rs->out;
    if (index >= MAX_TENSORS)
        snprintf(rs->outputs_error, sizeof rs->outputs_error, "'outputs' must be an array");
    if (rs->outputs_error[0] || peek(ps) != '{') {
        if (!rs->outputs_error[0])
            snprintf(rs->outputs_error, sizeof rs->outputs_error, "outputs[%zu]: 'name' must be a string", index);
        return skip_value(ps, DEPTH_TENSOR);
    }
    output_scan_t o = {.binary = -1};
    if (!walk_object(ps, DEPTH_TENSOR, output_member, &o)) {
        free(o.name);
        return false;
    }
    if (!o.name) {
        snprintf(rs->outputs_error, sizeof rs->outputs_error, "outputs[%zu]: 'name' must be a string", index);
        return true;
    }
    if (r->n_outputs == rs->cap_outputs) {
        int cap = rs->cap_outputs ? rs->cap_outputs * 2 : 4;
        kiln_v2_output_request_t *outs = realloc(r->outputs, (size_t)cap * sizeof *outs);
        if (outs)
            r->outputs = outs;
        signed char *bins = outs ? realloc(rs->output_binary, (size_t)cap) : NULL;
        if (!bins) {
            free(o.name);
            return memory_error(ps);
        }
        rs->output_binary = bins;
        rs->cap_outputs = cap;
    }
    r->outputs[r->n_outputs].name = o.name;
    rs->output_binary[r->n_outputs++] = o.binary;
    return true;
}

static bool request_param(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    request_scan_t *rs = ctx;
    if (long_key || strcmp(key, "binary_data_output"))
        return skip_value(ps, DEPTH_TENSOR);
    if (!once(ps, &rs->seen, KEY_BDO, key))
        return false;
    if (peek(ps) == 't') {
        rs->out->binary_default = true;
        return lex_literal(ps, "true");
    }
    return skip_value(ps, DEPTH_TENSOR);
}

static bool request_member(parser_t *ps, const char *key, bool long_key, void *ctx)
{
    request_scan_t *rs = ctx;
    if (long_key)
        return skip_value(ps, DEPTH_MEMBER);
    char c = peek(ps);
    if (!strcmp(key, "id")) {
        if (!once(ps, &rs->seen, KEY_ID, key))
            return false;
        str_tok_t tok;
        return c != '"' ? skip_value(ps, DEPTH_MEMBER) : lex_string(ps, &tok) && (rs->out->id = dup_string(ps, &tok)) != NULL;
    }
    if (!strcmp(key, "parameters")) {
        if (!once(ps, &rs->seen, KEY_PARAMS, key))
            return false;
        return c == '{' ? walk_object(ps, DEPTH_MEMBER, request_param, rs) : skip_value(ps, DEPTH_MEMBER);
    }
    if (!strcmp(key, "inputs")) {
        if (!once(ps, &rs->seen, KEY_INPUTS, key))
            return false;
        rs->inputs_ok = c == '[';
        return rs->inputs_ok ? walk_array(ps, DEPTH_MEMBER, input_element, rs) : skip_value(ps, DEPTH_MEMBER);
    }
    if (!strcmp(key, "outputs")) {
        if (!once(ps, &rs->seen, KEY_OUTPUTS, key))
            return false;
        if (c != '[') {
            snprintf(rs->outputs_error, sizeof rs->outputs_error, "'outputs' must be an array");
            return skip_value(ps, DEPTH_MEMBER);
        }
        /* an empty list means all outputs, as an absent one */
        return walk_array(ps, DEPTH_MEMBER, output_element, rs);
    }
    return skip_value(ps, DEPTH_MEMBER);
}

/* Parses the whole JSON part; semantic checks that need all of it last. */
static bool parse_request(parser_t *ps, request_scan_t *rs)
{
    char c = peek(ps);
    if (c == '[')
        return skip_value(ps, DEPTH_REQUEST) && (peek(ps) ? syntax_error(ps, "end of file expected")
                                              : semantic_error(ps, "the request body must be a JSON object"));
    if (c != '{')
        return syntax_error(ps, c ? "'[' or '{' expected" : "'[' or '{' expected near end of file");
    if (!walk_object(ps, DEPTH_REQUEST, request_member, rs))
        return false;
    if (peek(ps))
        return syntax_error(ps, "end of file expected");
    if (!rs->inputs_ok || rs->out->n_inputs == 0)
        return semantic_error(ps, "'inputs' must be a non-empty array");
    if (ps->bin_off != ps->bin_len)
        return semantic_error(ps, "%zu bytes of binary data are not claimed by any input", ps->bin_len - ps->bin_off);
    if (rs->outputs_error[0])
        return semantic_error(ps, "%s", rs->outputs_error);
    for (int i = 0; i < rs->out->n_outputs; i++)
        rs->out->outputs[i].binary = rs->output_binary[i] < 0 ? rs->out->binary_default : rs->output_binary[i] == 1;
    return true;
}

/* After a semantic error: a syntax error anywhere in the text takes
 * precedence (as it did when jansson parsed all of it first), so a body cut
 * short reads as malformed, not as whatever its first part lacked. */
static void prefer_syntax_error(parser_t *ps)
{
    parser_t chk = {.start = ps->start, .p = ps->start, .end = ps->end};
    if (skip_value(&chk, DEPTH_REQUEST) && peek(&chk))
        syntax_error(&chk, "end of file expected");
    if (chk.err_kind == ERR_SYNTAX) {
        memcpy(ps->err, chk.err, sizeof ps->err);
        ps->err_kind = ERR_SYNTAX;
    }
}

kiln_status_t kiln_v2_parse_infer(const char *body, size_t len, size_t json_len, kiln_v2_request_t *out)
{
    memset(out, 0, sizeof *out);
    if (json_len > len)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "Inference-Header-Content-Length %zu is larger than the body (%zu bytes)", json_len, len);
    parser_t ps = {.start = body, .p = body, .end = body + json_len, .bin = body + json_len, .bin_len = len - json_len};
    request_scan_t rs = {.out = out};
    bool ok = parse_request(&ps, &rs);
    free(rs.output_binary);
    if (ok)
        return KILN_OK;
    if (ps.err_kind == ERR_SEMANTIC)
        prefer_syntax_error(&ps);
    kiln_v2_request_clear(out);
    return kiln_fail(ps.err_kind == ERR_MEMORY ? KILN_ERR_NO_MEMORY : KILN_ERR_INVALID_ARGUMENT, "%s", ps.err);
}
