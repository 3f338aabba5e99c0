/* A read-only C view of a JSON document parsed by simdjson's DOM parser (json_simd.cc),
 * for the event module's C code. The accessors read simdjson's tape (its documented
 * format, doc/tape.md: one 64-bit word per value, the type in the top byte) in place:
 * nothing is copied or allocated per value. Not for use outside src/event/.
 *
 * Invariants:
 *  1. A document is valid from a successful sl__json_parse until the next call on the
 *     same thread; values and iterators borrow from it and die with it.
 *  2. Strings and keys are unescaped, valid UTF-8, not NUL-terminated (they may hold NUL
 *     until sl__json_check has passed).
 *  3. Every integer that fits int64 is SL__JSON_INT; SL__JSON_UINT only holds the range
 *     above INT64_MAX, which sl__json_check refuses. */
#ifndef SL_EVENT_JSON_H
#define SL_EVENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The parser's own nesting limit, jansson's JSON_PARSER_MAX_DEPTH before it: a body
 * nested deeper is refused as a whole (too_deep). The per-event max_depth is checked
 * later, in validate.c. */
#define SL__JSON_MAX_DEPTH 2048

/* Tape type bytes. */
typedef enum sl__json_type {
    SL__JSON_OBJECT = '{',
    SL__JSON_ARRAY = '[',
    SL__JSON_STRING = '"',
    SL__JSON_INT = 'l',
    SL__JSON_UINT = 'u',
    SL__JSON_REAL = 'd',
    SL__JSON_TRUE = 't',
    SL__JSON_FALSE = 'f',
    SL__JSON_NULL = 'n',
} sl__json_type;

typedef enum sl__json_status {
    SL__JSON_OK,
    SL__JSON_SYNTAX,    /* simdjson refused the body: not JSON, bad UTF-8, ... */
    SL__JSON_TOO_DEEP,  /* nested deeper than SL__JSON_MAX_DEPTH */
    SL__JSON_DUPLICATE, /* sl__json_check: a key twice in one object */
    SL__JSON_NUL,       /* sl__json_check: \u0000 in a string or key */
    SL__JSON_RANGE,     /* sl__json_check: an integer above INT64_MAX */
    SL__JSON_NOMEM,
} sl__json_status;

typedef struct sl__json_doc {
    const uint64_t *tape;
    const uint8_t *strings;
} sl__json_doc;

/* A value: a position on a document's tape. doc == NULL: no value (an absent field). */
typedef struct sl__json {
    const sl__json_doc *doc;
    size_t at;
} sl__json;

typedef struct sl__json_iter {
    const sl__json_doc *doc;
    size_t at, end; /* the next child's position; the closing '}' or ']' */
} sl__json_iter;

/* Parses body[0..len) (need not be NUL-terminated; it is copied into a padded per-thread
 * buffer) into the calling thread's reusable parser. On SL__JSON_SYNTAX *why is
 * simdjson's description of the error. @thread any; one parser per thread. */
sl__json_status sl__json_parse(const char *body, size_t len, sl__json_doc *doc, const char **why);

/* What jansson refused and simdjson does not: a key twice in one object at any depth
 * (*dup, *dup_len name it), \u0000 in a string or key (only looked for when the body holds
 * "u0000" at all, as `may_have_nul` says), an integer above INT64_MAX. May allocate
 * scratch for objects of many keys (SL__JSON_NOMEM). */
sl__json_status sl__json_check(const sl__json_doc *doc, bool may_have_nul, const char **dup,
                               size_t *dup_len);

static inline sl__json sl__json_root(const sl__json_doc *doc)
{
    return (sl__json){doc, 1}; /* tape[0] is the root word */
}

static inline bool sl__json_none(sl__json v)
{
    return v.doc == NULL;
}

static inline uint64_t sl__json_payload(const sl__json_doc *doc, size_t at)
{
    return doc->tape[at] & ((UINT64_C(1) << 56) - 1);
}

static inline sl__json_type sl__json_typeof(sl__json v)
{
    return (sl__json_type)(v.doc->tape[v.at] >> 56);
}

static inline bool sl__json_is_number(sl__json v)
{
    sl__json_type t = sl__json_typeof(v);
    return t == SL__JSON_INT || t == SL__JSON_REAL || t == SL__JSON_UINT;
}

/* The position just past the value at `at`. */
static inline size_t sl__json_skip(const sl__json_doc *doc, size_t at)
{
    switch ((sl__json_type)(doc->tape[at] >> 56)) {
    case SL__JSON_OBJECT:
    case SL__JSON_ARRAY:
        return (size_t)(doc->tape[at] & 0xffffffffu);
    case SL__JSON_INT:
    case SL__JSON_UINT:
    case SL__JSON_REAL:
        return at + 2;
    default:
        return at + 1;
    }
}

/* The bytes of a string value or key at `at`. */
static inline const char *sl__json_str_at(const sl__json_doc *doc, size_t at, size_t *len)
{
    const uint8_t *p = doc->strings + sl__json_payload(doc, at);
    uint32_t n;
    memcpy(&n, p, sizeof n);
    *len = n;
    return (const char *)p + sizeof n;
}

static inline const char *sl__json_str(sl__json v, size_t *len)
{
    return sl__json_str_at(v.doc, v.at, len);
}

static inline int64_t sl__json_int(sl__json v)
{
    int64_t i;
    memcpy(&i, &v.doc->tape[v.at + 1], sizeof i);
    return i;
}

static inline uint64_t sl__json_uint(sl__json v)
{
    return v.doc->tape[v.at + 1];
}

static inline double sl__json_real(sl__json v)
{
    double d;
    memcpy(&d, &v.doc->tape[v.at + 1], sizeof d);
    return d;
}

/* Iterates an object's fields or an array's elements. */
static inline sl__json_iter sl__json_iter_of(sl__json v)
{
    return (sl__json_iter){v.doc, v.at + 1, sl__json_skip(v.doc, v.at) - 1};
}

static inline bool sl__json_obj_next(sl__json_iter *it, const char **key, size_t *klen,
                                     sl__json *val)
{
    if (it->at >= it->end)
        return false;
    *key = sl__json_str_at(it->doc, it->at, klen);
    *val = (sl__json){it->doc, it->at + 1};
    it->at = sl__json_skip(it->doc, it->at + 1);
    return true;
}

static inline bool sl__json_arr_next(sl__json_iter *it, sl__json *val)
{
    if (it->at >= it->end)
        return false;
    *val = (sl__json){it->doc, it->at};
    it->at = sl__json_skip(it->doc, it->at);
    return true;
}

/* Fields of an object or elements of an array. The tape keeps the count in 24 bits; a
 * saturated count is made exact by walking the children. */
static inline size_t sl__json_size(sl__json v)
{
    size_t n = (size_t)((v.doc->tape[v.at] >> 32) & 0xffffff);
    if (n < 0xffffff)
        return n;
    n = 0;
    for (size_t at = v.at + 1, end = sl__json_skip(v.doc, v.at) - 1; at < end; n++) {
        if (sl__json_typeof(v) == SL__JSON_OBJECT)
            at++; /* the key */
        at = sl__json_skip(v.doc, at);
    }
    return n;
}

/* The value of `key` in object v, or none. Linear: for the few lookups per event. */
static inline sl__json sl__json_get(sl__json v, const char *key, size_t klen)
{
    sl__json_iter it = sl__json_iter_of(v);
    const char *k;
    size_t n;
    sl__json val;
    while (sl__json_obj_next(&it, &k, &n, &val)) {
        if (n == klen && memcmp(k, key, klen) == 0)
            return val;
    }
    return (sl__json){NULL, 0};
}

#endif
