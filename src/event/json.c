/* The checks that jansson made while parsing and simdjson does not (json.h): duplicate
 * keys at any depth, \u0000 in strings and keys, integers above INT64_MAX. One linear pass
 * over the tape, no recursion, so it costs the same at any nesting. */
#include <stdlib.h>
#include <string.h>

#include "event/json.h"

/* Objects up to this many keys are checked pair by pair; larger ones are sorted. */
#define SMALL_OBJECT 24

typedef struct key_ref {
    const char *s;
    size_t len;
} key_ref;

static int key_cmp(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->s, y->s, x->len);
}

/* The first key (in order) that repeats one before it, for objects of few keys; or, for
 * large ones, some key that occurs twice (jansson's re-parse says which it met first). */
static sl__json_status object_dups(const sl__json_doc *doc, size_t at, key_ref **scratch,
                                   size_t *scratch_cap, const char **dup, size_t *dup_len)
{
    sl__json obj = {doc, at};
    size_t n = sl__json_size(obj);
    if (n < 2)
        return SL__JSON_OK;
    sl__json_iter it = sl__json_iter_of(obj);
    if (n <= SMALL_OBJECT) {
        /* A 64-bit filter on (length, first and last byte) spares the pairwise compare
         * for most keys: a typical event's keys all differ there. */
        key_ref keys[SMALL_OBJECT];
        uint64_t seen = 0;
        const char *k;
        size_t klen;
        sl__json v;
        for (size_t i = 0; sl__json_obj_next(&it, &k, &klen, &v); i++) {
            unsigned h = (unsigned)klen * 7;
            if (klen)
                h += (unsigned char)k[0] * 3 + (unsigned char)k[klen - 1];
            uint64_t bit = UINT64_C(1) << (h & 63);
            keys[i] = (key_ref){k, klen};
            if (!(seen & bit)) {
                seen |= bit;
                continue;
            }
            for (size_t j = 0; j < i; j++) {
                if (keys[j].len == klen && memcmp(keys[j].s, k, klen) == 0) {
                    *dup = k;
                    *dup_len = klen;
                    return SL__JSON_DUPLICATE;
                }
            }
        }
        return SL__JSON_OK;
    }
    if (n > *scratch_cap) {
        key_ref *p = realloc(*scratch, n * sizeof *p);
        if (!p)
            return SL__JSON_NOMEM;
        *scratch = p;
        *scratch_cap = n;
    }
    key_ref *keys = *scratch;
    sl__json v;
    for (size_t i = 0; i < n && sl__json_obj_next(&it, &keys[i].s, &keys[i].len, &v); i++)
        ;
    qsort(keys, n, sizeof *keys, key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
            *dup = keys[i].s;
            *dup_len = keys[i].len;
            return SL__JSON_DUPLICATE;
        }
    }
    return SL__JSON_OK;
}

sl__json_status sl__json_check(const sl__json_doc *doc, bool may_have_nul, const char **dup,
                               size_t *dup_len)
{
    key_ref *scratch = NULL;
    size_t scratch_cap = 0;
    sl__json_status st = SL__JSON_OK;
    size_t end = (size_t)(doc->tape[0] & 0xffffffffu) - 1; /* the closing root word */
    for (size_t at = 1; at < end && st == SL__JSON_OK;) {
        switch ((sl__json_type)(doc->tape[at] >> 56)) {
        case SL__JSON_OBJECT:
            st = object_dups(doc, at, &scratch, &scratch_cap, dup, dup_len);
            at++; /* into the object: its values are checked in turn */
            break;
        case SL__JSON_STRING: /* a value or a key */
            if (may_have_nul) {
                size_t len;
                const char *s = sl__json_str_at(doc, at, &len);
                if (memchr(s, '\0', len))
                    st = SL__JSON_NUL;
            }
            at++;
            break;
        case SL__JSON_UINT:
            st = SL__JSON_RANGE;
            break;
        case SL__JSON_INT:
        case SL__JSON_REAL:
            at += 2;
            break;
        default: /* '[', '}', ']', true, false, null */
            at++;
            break;
        }
    }
    free(scratch);
    return st;
}
