/* The Parquet reader of parquet.h: a whole file held in memory, its footer decoded by
 * meta.c, its schema tree turned into leaves with their maximum levels, and one column
 * chunk at a time decoded into level slots and values (data page v1 and v2; PLAIN and
 * dictionary values; RLE levels; uncompressed, snappy, gzip and zstd pages).
 *
 * Invariants:
 *  1. Everything the reader allocates after open comes from pr->data, whose cap bounds the
 *     memory decoded columns take; the footer's structures come from pr->meta (same cap).
 *  2. Every offset and length read from the file is checked against the bytes it claims
 *     before it is used; a file that breaks a rule gets SL_ERR_CORRUPT naming the column and
 *     what was wrong, one that uses what this reader lacks SL_ERR_UNSUPPORTED naming it.
 *  3. Values of a decoded column point into pr->data or into the file, never elsewhere. */
#include "parquet/parquet_int.h"

#include <inttypes.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define READER_DEFAULT_MEMORY ((size_t)256 << 20)
/* Levels are kept in a byte each: a schema may nest this deep at most. */
#define READER_MAX_DEPTH 64

struct sl_pq_reader {
    const uint8_t *file;
    size_t size;
    size_t cap;
    sl__pq_arena meta; /* footer structures and leaf descriptions */
    sl__pq_arena data; /* decoded columns, reset by sl_pq_reader_reset */
    sl__pq_file_meta fm;
    sl_pq_leaf_info *leaves;
    size_t n_leaves;
    int32_t *phys; /* physical type of each leaf (SL__PQT_*) */
};

static const char *codec_name(int32_t c)
{
    static const char *const names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                        "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW"};
    return c >= 0 && c < 8 ? names[c] : "unknown";
}

static const char *encoding_name(int32_t e)
{
    static const char *const names[] = {
        "PLAIN",          "GROUP_VAR_INT",       "PLAIN_DICTIONARY",        "RLE",
        "BIT_PACKED",     "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY",
        "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"};
    return e >= 0 && e < 10 ? names[e] : "unknown";
}

/* ---- schema ---- */

typedef struct walk {
    sl_pq_reader_t *pr;
    size_t next; /* schema element to read */
    size_t leaf; /* leaves found so far */
    const char *names[READER_MAX_DEPTH + 1];
    size_t name_lens[READER_MAX_DEPTH + 1];
    bool counting; /* first pass: count leaves only */
} walk;

/* What a leaf's types mean to sluice, or why it is refused (a static string). */
static const char *leaf_types(const sl__pq_schema_elem *se, sl_pq_type *type,
                              sl_pq_logical *logical, bool *from_float)
{
    *logical = SL_PQ_LOGICAL_NONE;
    *from_float = false;
    switch (se->type) {
    case SL__PQT_BOOLEAN:
        *type = SL_PQ_BOOLEAN;
        break;
    case SL__PQT_INT32:
        *type = SL_PQ_INT32;
        break;
    case SL__PQT_INT64:
        *type = SL_PQ_INT64;
        break;
    case SL__PQT_FLOAT:
        *type = SL_PQ_DOUBLE;
        *from_float = true;
        break;
    case SL__PQT_DOUBLE:
        *type = SL_PQ_DOUBLE;
        break;
    case SL__PQT_BYTE_ARRAY:
        *type = SL_PQ_BYTE_ARRAY;
        break;
    case SL__PQT_INT96:
        return "physical type INT96";
    case SL__PQT_FIXED:
        return "physical type FIXED_LEN_BYTE_ARRAY";
    default:
        return "an unknown physical type";
    }
    int lk = se->logical.kind;
    if (lk == SL__PQL_STRING || (!lk && se->converted_type == SL__PQC_UTF8) || lk == 4 /* ENUM */ ||
        (!lk && se->converted_type == 16 /* ENUM */)) {
        *logical = SL_PQ_LOGICAL_STRING;
    } else if (lk == SL__PQL_JSON || (!lk && se->converted_type == SL__PQC_JSON)) {
        *logical = SL_PQ_LOGICAL_JSON;
    } else if (lk == SL__PQL_DATE || (!lk && se->converted_type == SL__PQC_DATE)) {
        *logical = SL_PQ_LOGICAL_DATE;
    } else if (lk == SL__PQL_TIMESTAMP) {
        if (se->logical.ts_unit != SL__PQU_MICROS)
            return se->logical.ts_unit == SL__PQU_MILLIS ? "logical type TIMESTAMP(MILLIS)"
                                                         : "logical type TIMESTAMP(NANOS)";
        if (!se->logical.ts_utc)
            return "logical type TIMESTAMP without isAdjustedToUTC";
        *logical = SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC;
    } else if (!lk && se->converted_type == SL__PQC_TIMESTAMP_MICROS) {
        *logical = SL_PQ_LOGICAL_TIMESTAMP_MICROS_UTC;
    } else if (lk == 5 || (!lk && se->converted_type == 5)) {
        return "logical type DECIMAL";
    } else if (lk == 7 || (!lk && (se->converted_type == 7 || se->converted_type == 8))) {
        return "logical type TIME";
    } else if (!lk && se->converted_type == 9) {
        return "converted type TIMESTAMP_MILLIS";
    } else if (!lk && se->converted_type >= 11 && se->converted_type <= 14) {
        return "an unsigned integer type";
    } else if (!lk && se->converted_type == 21) {
        return "converted type INTERVAL";
    } else if (lk == 10) { /* INTEGER: signed ones read as they are */
        return NULL;       /* (the bit width and sign are not kept by meta.c) */
    } else if (lk && lk != SL__PQL_STRING) {
        return "an unsupported logical type";
    }
    if ((*logical == SL_PQ_LOGICAL_STRING || *logical == SL_PQ_LOGICAL_JSON) &&
        *type != SL_PQ_BYTE_ARRAY)
        return "a string type on a non-BYTE_ARRAY column";
    return NULL;
}

static char *join_path(sl__pq_arena *a, const walk *w, size_t depth)
{
    size_t len = 0;
    for (size_t k = 1; k <= depth; k++)
        len += w->name_lens[k] + 1;
    char *s = sl__pq_arena_alloc(a, len + 1);
    if (!s)
        return NULL;
    size_t at = 0;
    for (size_t k = 1; k <= depth; k++) {
        if (k > 1)
            s[at++] = '.';
        memcpy(s + at, w->names[k], w->name_lens[k]);
        at += w->name_lens[k];
    }
    s[at] = '\0';
    return s;
}

/* Walks the children of the element just read (depth first), computing levels. */
static sl_err walk_children(walk *w, int32_t n_children, size_t depth, int rep, int def,
                            char *errbuf, size_t errlen)
{
    sl_err err;
    sl_pq_reader_t *pr = w->pr;
    if (depth > READER_MAX_DEPTH)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "parquet schema nests deeper than %d levels", READER_MAX_DEPTH);
    for (int32_t i = 0; i < n_children; i++) {
        if (w->next >= pr->fm.n_schema)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                 "corrupt parquet schema: a group has more children than "
                                 "there are elements");
        const sl__pq_schema_elem *se = &pr->fm.schema[w->next++];
        int r = rep, d = def;
        if (se->repetition == 1) {
            d++;
        } else if (se->repetition == 2) {
            d++;
            r++;
        } else if (se->repetition != 0) {
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                 "corrupt parquet schema: element %zu has repetition %d",
                                 w->next - 1, (int)se->repetition);
        }
        w->names[depth + 1] = se->name.ptr;
        w->name_lens[depth + 1] = se->name.len;
        if (se->num_children > 0 || se->type < 0) {
            if (se->num_children <= 0)
                return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                     "corrupt parquet schema: element %zu has neither a type "
                                     "nor children",
                                     w->next - 1);
            if ((err = walk_children(w, se->num_children, depth + 1, r, d, errbuf, errlen)))
                return err;
            continue;
        }
        if (!w->counting) {
            sl_pq_leaf_info *li = &pr->leaves[w->leaf];
            bool from_float;
            pr->phys[w->leaf] = se->type;
            li->unsupported = leaf_types(se, &li->type, &li->logical, &from_float);
            li->from_float = from_float;
            li->max_rep = r;
            li->max_def = d;
            li->repetition = se->repetition == 1 ? SL_PQ_OPTIONAL : SL_PQ_REQUIRED;
            if (!(li->path = join_path(&pr->meta, w, depth + 1)))
                return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                                     "parquet schema over the reader's memory limit");
            li->name = li->path + strlen(li->path) - se->name.len;
        }
        w->leaf++;
    }
    return SL_OK;
}

static sl_err schema_leaves(sl_pq_reader_t *pr, char *errbuf, size_t errlen)
{
    sl_err err;
    if (pr->fm.n_schema == 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT, "corrupt parquet schema: empty");
    const sl__pq_schema_elem *root = &pr->fm.schema[0];
    if (root->num_children <= 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "corrupt parquet schema: the root has no children");
    for (int pass = 0; pass < 2; pass++) {
        walk w = {.pr = pr, .next = 1, .counting = pass == 0};
        if ((err = walk_children(&w, root->num_children, 0, 0, 0, errbuf, errlen)))
            return err;
        if (w.next != pr->fm.n_schema)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                 "corrupt parquet schema: %zu elements, the tree uses %zu",
                                 pr->fm.n_schema, w.next);
        if (pass == 0) {
            pr->n_leaves = w.leaf;
            pr->leaves = sl__pq_arena_alloc(&pr->meta, w.leaf * sizeof *pr->leaves + 1);
            pr->phys = sl__pq_arena_alloc(&pr->meta, w.leaf * sizeof *pr->phys + 1);
            if (!pr->leaves || !pr->phys)
                return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                                     "parquet schema over the reader's memory limit");
        }
    }
    return SL_OK;
}

/* ---- open ---- */

void sl_pq_reader_options_default(sl_pq_reader_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_memory = READER_DEFAULT_MEMORY;
}

sl_err sl_pq_reader_open(const void *file, size_t size, const sl_pq_reader_options *opts,
                         sl_pq_reader_t **prp, char *errbuf, size_t errlen)
{
    sl_err err;
    sl_pq_reader_options def;
    *prp = NULL;
    sl_pq_reader_options_default(&def);
    if (!opts)
        opts = &def;
    sl_pq_reader_t *pr = calloc(1, sizeof *pr);
    if (!pr)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory opening a parquet file");
    pr->file = file;
    pr->size = size;
    pr->cap = opts->max_memory ? opts->max_memory : def.max_memory;
    sl__pq_arena_init(&pr->meta, pr->cap);
    sl__pq_arena_init(&pr->data, pr->cap);
    if (size >= 4 && memcmp((const uint8_t *)file + size - 4, "PARE", 4) == 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                            "parquet file with an encrypted footer (\"PARE\"): not supported");
        goto out;
    }
    if ((err = sl__pq_footer_decode(file, size, &pr->meta, &pr->fm, errbuf, errlen)))
        goto out;
    if ((err = schema_leaves(pr, errbuf, errlen)))
        goto out;
    if (pr->fm.num_rows < 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "corrupt parquet footer: %" PRId64 " rows", pr->fm.num_rows);
        goto out;
    }
    for (size_t g = 0; g < pr->fm.n_row_groups; g++) {
        const sl__pq_row_group *rg = &pr->fm.row_groups[g];
        if (rg->n_columns != pr->n_leaves || rg->num_rows < 0) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                "corrupt parquet footer: row group %zu has %zu column chunks "
                                "and %" PRId64 " rows for %zu leaves",
                                g, rg->n_columns, rg->num_rows, pr->n_leaves);
            goto out;
        }
    }
    *prp = pr;
    return SL_OK;
out:
    sl_pq_reader_free(pr);
    return err;
}

void sl_pq_reader_free(sl_pq_reader_t *pr)
{
    if (!pr)
        return;
    sl__pq_arena_cleanup(&pr->meta);
    sl__pq_arena_cleanup(&pr->data);
    free(pr);
}

void sl_pq_reader_reset(sl_pq_reader_t *pr)
{
    sl__pq_arena_cleanup(&pr->data);
    sl__pq_arena_init(&pr->data, pr->cap);
}

uint64_t sl_pq_reader_rows(const sl_pq_reader_t *pr)
{
    return (uint64_t)pr->fm.num_rows;
}

size_t sl_pq_reader_row_groups(const sl_pq_reader_t *pr)
{
    return pr->fm.n_row_groups;
}

uint64_t sl_pq_reader_row_group_rows(const sl_pq_reader_t *pr, size_t rg)
{
    return rg < pr->fm.n_row_groups ? (uint64_t)pr->fm.row_groups[rg].num_rows : 0;
}

size_t sl_pq_reader_leaves(const sl_pq_reader_t *pr)
{
    return pr->n_leaves;
}

const sl_pq_leaf_info *sl_pq_reader_leaf(const sl_pq_reader_t *pr, size_t leaf)
{
    return leaf < pr->n_leaves ? &pr->leaves[leaf] : NULL;
}

bool sl_pq_reader_find(const sl_pq_reader_t *pr, const char *path, size_t *leaf)
{
    for (size_t i = 0; i < pr->n_leaves; i++)
        if (strcmp(pr->leaves[i].path, path) == 0) {
            *leaf = i;
            return true;
        }
    return false;
}

/* ---- pages ---- */

/* What decoding one column chunk needs to carry around. */
typedef struct chunk_dec {
    sl_pq_reader_t *pr;
    const sl_pq_leaf_info *li;
    int32_t phys, codec;
    char *errbuf;
    size_t errlen;
    sl_pq_value *dict; /* dictionary entries, when the chunk has a dictionary page */
    size_t n_dict;
    uint32_t *scratch; /* RLE output for one page */
    size_t scratch_n;
    sl_pq_column_data *out;
    size_t slots; /* slots filled so far */
    size_t slots_max;
} chunk_dec;

static sl_err corrupt(chunk_dec *cd, const char *what)
{
    return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_CORRUPT,
                         "corrupt parquet column \"%s\": %s", cd->li->path, what);
}

static void *data_alloc(chunk_dec *cd, size_t n)
{
    return sl__pq_arena_alloc(&cd->pr->data, n ? n : 1);
}

static sl_err no_room(chunk_dec *cd)
{
    return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_TOO_LARGE,
                         "parquet column \"%s\" does not fit the reader's memory limit of %zu "
                         "bytes",
                         cd->li->path, cd->pr->cap);
}

static sl_err gunzip(chunk_dec *cd, const uint8_t *src, size_t n, uint8_t *dst, size_t dn)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_NOMEM, "zlib could not start");
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = dst;
    zs.avail_out = (uInt)dn;
    sl_err err = SL_OK;
    for (;;) {
        int rc = inflate(&zs, Z_FINISH);
        if (rc == Z_STREAM_END) {
            if (zs.avail_in == 0)
                break;
            inflateReset(&zs); /* concatenated gzip members */
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            err = corrupt(cd, "a gzip page does not inflate");
            break;
        }
        if (zs.avail_out == 0 || zs.avail_in == 0) {
            err = corrupt(cd, "a gzip page does not inflate to its stated size");
            break;
        }
    }
    if (!err && zs.avail_out != 0)
        err = corrupt(cd, "a gzip page inflates to less than its stated size");
    inflateEnd(&zs);
    return err;
}

/* Uncompresses src[0..n) into dn fresh bytes (exactly dn, or the page is corrupt). */
static sl_err page_uncompress(chunk_dec *cd, const uint8_t *src, size_t n, size_t dn,
                              const uint8_t **dst)
{
    if (dn == 0) { /* nothing to read (some writers store no codec frame for it) */
        *dst = src;
        return SL_OK;
    }
    if (cd->codec == 0) {
        if (n != dn)
            return corrupt(cd, "an uncompressed page's two sizes differ");
        *dst = src;
        return SL_OK;
    }
    uint8_t *d = data_alloc(cd, dn);
    if (!d)
        return no_room(cd);
    *dst = d;
    if (cd->codec == 1) {
        size_t len;
        if (snappy_uncompressed_length((const char *)src, n, &len) != SNAPPY_OK || len != dn)
            return corrupt(cd, "a snappy page does not state its page's size");
        if (snappy_uncompress((const char *)src, n, (char *)d, &len) != SNAPPY_OK || len != dn)
            return corrupt(cd, "a snappy page does not uncompress");
        return SL_OK;
    }
    if (cd->codec == 6) {
        size_t got = ZSTD_decompress(d, dn, src, n);
        if (ZSTD_isError(got) || got != dn)
            return corrupt(cd, "a zstd page does not uncompress to its stated size");
        return SL_OK;
    }
    if (cd->codec == 2)
        return gunzip(cd, src, n, d, dn);
    return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_UNSUPPORTED,
                         "parquet column \"%s\": codec %s is not supported", cd->li->path,
                         codec_name(cd->codec));
}

static sl_err need_scratch(chunk_dec *cd, size_t n)
{
    if (n <= cd->scratch_n)
        return SL_OK;
    if (n > SIZE_MAX / 8 || !(cd->scratch = data_alloc(cd, n * sizeof *cd->scratch)))
        return no_room(cd);
    cd->scratch_n = n;
    return SL_OK;
}

/* Decodes n levels (RLE hybrid, bit width of max) into levels[0..n). */
static sl_err decode_levels(chunk_dec *cd, const uint8_t *p, size_t len, int max, uint8_t *levels,
                            size_t n)
{
    sl_err err;
    if ((err = need_scratch(cd, n)))
        return err;
    if (sl__pq_rle_decode(p, len, sl__pq_bit_width((uint32_t)max), cd->scratch, n))
        return corrupt(cd, "levels run past their bytes or do not fit their bit width");
    for (size_t k = 0; k < n; k++) {
        if (cd->scratch[k] > (uint32_t)max)
            return corrupt(cd, "a level above the column's maximum");
        levels[k] = (uint8_t)cd->scratch[k];
    }
    return SL_OK;
}

/* Decodes n PLAIN values from p[0..len) into vals (non-null slots only, in order).
 * *used is how many bytes they took. */
static sl_err plain_decode(chunk_dec *cd, const uint8_t *p, size_t len, sl_pq_value *vals, size_t n,
                           size_t *used)
{
    size_t at = 0;
    switch (cd->phys) {
    case SL__PQT_BOOLEAN:
        if ((n + 7) / 8 > len)
            return corrupt(cd, "booleans run past their page");
        for (size_t k = 0; k < n; k++)
            vals[k].v.b = (p[k / 8] >> (k % 8)) & 1;
        at = (n + 7) / 8;
        break;
    case SL__PQT_INT32:
    case SL__PQT_FLOAT:
        if (n > len / 4)
            return corrupt(cd, "4-byte values run past their page");
        for (size_t k = 0; k < n; k++) {
            if (cd->phys == SL__PQT_INT32) {
                memcpy(&vals[k].v.i32, p + 4 * k, 4);
            } else {
                float f;
                memcpy(&f, p + 4 * k, 4);
                vals[k].v.f64 = f;
            }
        }
        at = 4 * n;
        break;
    case SL__PQT_INT64:
    case SL__PQT_DOUBLE:
        if (n > len / 8)
            return corrupt(cd, "8-byte values run past their page");
        for (size_t k = 0; k < n; k++)
            memcpy(&vals[k].v.i64, p + 8 * k, 8); /* f64 shares the bytes */
        at = 8 * n;
        break;
    case SL__PQT_BYTE_ARRAY:
        for (size_t k = 0; k < n; k++) {
            uint32_t l;
            if (len - at < 4)
                return corrupt(cd, "a byte array's length runs past its page");
            memcpy(&l, p + at, 4);
            at += 4;
            if (l > len - at)
                return corrupt(cd, "a byte array runs past its page");
            vals[k].v.bytes.ptr = (const char *)p + at;
            vals[k].v.bytes.len = l;
            at += l;
        }
        break;
    default:
        return corrupt(cd, "unknown physical type");
    }
    for (size_t k = 0; k < n; k++)
        vals[k].is_null = false;
    *used = at;
    return SL_OK;
}

static sl_err read_dictionary(chunk_dec *cd, const sl__pq_page_header *ph, const uint8_t *body)
{
    sl_err err;
    size_t used;
    if (cd->dict)
        return corrupt(cd, "a second dictionary page");
    if (ph->encoding != SL__PQE_PLAIN && ph->encoding != SL__PQE_PLAIN_DICTIONARY)
        return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_UNSUPPORTED,
                             "parquet column \"%s\": dictionary encoding %s is not supported",
                             cd->li->path, encoding_name(ph->encoding));
    const uint8_t *p;
    if ((err = page_uncompress(cd, body, (size_t)ph->compressed_page_size,
                               (size_t)ph->uncompressed_page_size, &p)))
        return err;
    size_t n = (size_t)ph->num_values;
    /* every entry takes at least one byte, except booleans (never dictionary-encoded) */
    if (n > (size_t)ph->uncompressed_page_size || cd->phys == SL__PQT_BOOLEAN)
        return corrupt(cd, "a dictionary with more entries than bytes");
    if (!(cd->dict = data_alloc(cd, n * sizeof *cd->dict)))
        return no_room(cd);
    cd->n_dict = n;
    return plain_decode(cd, p, (size_t)ph->uncompressed_page_size, cd->dict, n, &used);
}

/* One data page (v1 or v2): levels into out at cd->slots, then values. */
static sl_err read_data_page(chunk_dec *cd, const sl__pq_page_header *ph, const uint8_t *body)
{
    sl_err err;
    const sl_pq_leaf_info *li = cd->li;
    size_t n = (size_t)ph->num_values;
    size_t clen = (size_t)ph->compressed_page_size, ulen = (size_t)ph->uncompressed_page_size;
    const uint8_t *p, *reps_p = NULL, *defs_p = NULL;
    size_t len, reps_len = 0, defs_len = 0;
    if (n > cd->slots_max - cd->slots)
        return corrupt(cd, "pages hold more values than the column chunk states");
    if (ph->has_data_v2) {
        size_t lv = (size_t)ph->rep_len + (size_t)ph->def_len;
        if (lv > clen || lv > ulen)
            return corrupt(cd, "a v2 page's levels are longer than the page");
        reps_p = body;
        reps_len = (size_t)ph->rep_len;
        defs_p = body + reps_len;
        defs_len = (size_t)ph->def_len;
        if (ph->v2_compressed) {
            if ((err = page_uncompress(cd, body + lv, clen - lv, ulen - lv, &p)))
                return err;
        } else {
            if (clen != ulen)
                return corrupt(cd, "an uncompressed v2 page's two sizes differ");
            p = body + lv;
        }
        len = ulen - lv;
    } else {
        if ((err = page_uncompress(cd, body, clen, ulen, &p)))
            return err;
        len = ulen;
        for (int k = 0; k < 2; k++) { /* repetition, then definition levels */
            int max = k ? li->max_def : li->max_rep;
            if (!max)
                continue;
            int32_t enc = k ? ph->def_encoding : ph->rep_encoding;
            if (enc != SL__PQE_RLE)
                return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_UNSUPPORTED,
                                     "parquet column \"%s\": level encoding %s is not supported",
                                     li->path, encoding_name(enc));
            uint32_t l;
            if (len < 4)
                return corrupt(cd, "levels' length runs past the page");
            memcpy(&l, p, 4);
            if (l > len - 4)
                return corrupt(cd, "levels run past the page");
            *(k ? &defs_p : &reps_p) = p + 4;
            *(k ? &defs_len : &reps_len) = l;
            p += 4 + l;
            len -= 4 + l;
        }
    }
    sl_pq_column_data *out = cd->out;
    uint8_t *reps = out->reps ? (uint8_t *)out->reps + cd->slots : NULL;
    uint8_t *defs = out->defs ? (uint8_t *)out->defs + cd->slots : NULL;
    if (li->max_rep && (err = decode_levels(cd, reps_p, reps_len, li->max_rep, reps, n)))
        return err;
    if (li->max_def && (err = decode_levels(cd, defs_p, defs_len, li->max_def, defs, n)))
        return err;
    if (li->max_rep && n && cd->slots == 0 && reps[0] != 0)
        return corrupt(cd, "the first value does not start a row");
    size_t nv = 0;
    for (size_t k = 0; k < n; k++)
        nv += !li->max_def || defs[k] == li->max_def;
    /* Values of the non-null slots go to the end of the page's slots first, then move
     * into place; nulls are marked. */
    sl_pq_value *slot = (sl_pq_value *)out->values + cd->slots;
    sl_pq_value *vals = slot + (n - nv);
    if (ph->encoding == SL__PQE_PLAIN) {
        size_t used;
        if ((err = plain_decode(cd, p, len, vals, nv, &used)))
            return err;
    } else if (ph->encoding == SL__PQE_RLE_DICTIONARY || ph->encoding == SL__PQE_PLAIN_DICTIONARY) {
        if (!cd->dict)
            return corrupt(cd, "dictionary indices without a dictionary page");
        if (nv) {
            if (len < 1 || p[0] > 32)
                return corrupt(cd, "bad bit width of dictionary indices");
            if ((err = need_scratch(cd, nv)))
                return err;
            if (sl__pq_rle_decode(p + 1, len - 1, p[0], cd->scratch, nv))
                return corrupt(cd, "dictionary indices run past their page");
            for (size_t k = 0; k < nv; k++) {
                if (cd->scratch[k] >= cd->n_dict)
                    return corrupt(cd, "a dictionary index past the dictionary");
                vals[k] = cd->dict[cd->scratch[k]];
            }
        }
    } else if (ph->encoding == SL__PQE_RLE && cd->phys == SL__PQT_BOOLEAN) {
        uint32_t l;
        if ((err = need_scratch(cd, nv)))
            return err;
        if (len < 4) /* a 4-byte length, then the runs (page v1 and v2 alike) */
            return corrupt(cd, "boolean runs' length runs past the page");
        memcpy(&l, p, 4);
        if (l > len - 4 || sl__pq_rle_decode(p + 4, l, 1, cd->scratch, nv))
            return corrupt(cd, "boolean runs run past their page");
        for (size_t k = 0; k < nv; k++) {
            vals[k].is_null = false;
            vals[k].v.b = cd->scratch[k] != 0;
        }
    } else {
        return sl_errbuf_set(cd->errbuf, cd->errlen, SL_ERR_UNSUPPORTED,
                             "parquet column \"%s\": encoding %s is not supported", li->path,
                             encoding_name(ph->encoding));
    }
    /* Slot k reads vals[j] at index n - nv + j >= k (nulls so far <= n - nv): forward
     * moves never overwrite a value still to be read. */
    size_t j = 0;
    for (size_t k = 0; k < n; k++) {
        if (!li->max_def || defs[k] == li->max_def) {
            slot[k] = vals[j++];
        } else {
            memset(&slot[k], 0, sizeof slot[k]);
            slot[k].is_null = true;
        }
    }
    cd->slots += n;
    return SL_OK;
}

sl_err sl_pq_reader_read_column(sl_pq_reader_t *pr, size_t rg, size_t leaf, sl_pq_column_data *out,
                                char *errbuf, size_t errlen)
{
    sl_err err;
    memset(out, 0, sizeof *out);
    if (rg >= pr->fm.n_row_groups || leaf >= pr->n_leaves)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "no column %zu in row group %zu of the parquet file", leaf, rg);
    const sl_pq_leaf_info *li = &pr->leaves[leaf];
    const sl__pq_col_chunk *cc = &pr->fm.row_groups[rg].columns[leaf];
    const sl__pq_col_meta *cm = &cc->meta;
    chunk_dec cd = {
        .pr = pr, .li = li, .phys = pr->phys[leaf], .errbuf = errbuf, .errlen = errlen, .out = out};
    if (li->unsupported)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "parquet column \"%s\": %s is not supported", li->path,
                             li->unsupported);
    if (!cc->has_meta)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "parquet column \"%s\": column chunk metadata in another file or "
                             "encrypted: not supported",
                             li->path);
    if (cm->type != cd.phys)
        return corrupt(&cd, "the chunk's type differs from the schema's");
    cd.codec = cm->codec;
    if (cd.codec != 0 && cd.codec != 1 && cd.codec != 2 && cd.codec != 6)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_UNSUPPORTED,
                             "parquet column \"%s\": codec %s is not supported", li->path,
                             codec_name(cd.codec));
    if (cm->num_values == 0) /* an empty chunk: some writers leave its offsets at 0 */
        return SL_OK;
    int64_t start = cm->data_page_offset;
    if (cm->dictionary_page_offset > 0 && cm->dictionary_page_offset < start)
        start = cm->dictionary_page_offset;
    if (start < 4 || cm->total_compressed_size < 0 || (uint64_t)start > pr->size ||
        (uint64_t)cm->total_compressed_size > pr->size - (uint64_t)start || cm->num_values < 0)
        return corrupt(&cd, "the chunk's offsets lie outside the file");
    /* Each slot takes at least a bit of levels or a byte of value; bound before allocating */
    uint64_t n = (uint64_t)cm->num_values;
    if (n > (uint64_t)cm->total_uncompressed_size * 8 + 64 && n > 1u << 20)
        return corrupt(&cd, "more values than the chunk's size can hold");
    if (n > pr->cap / sizeof(sl_pq_value))
        return no_room(&cd);
    cd.slots_max = (size_t)n;
    out->values = data_alloc(&cd, cd.slots_max * sizeof(sl_pq_value));
    if (!out->values)
        return no_room(&cd);
    if (li->max_rep && !(out->reps = data_alloc(&cd, cd.slots_max)))
        return no_room(&cd);
    if (li->max_def && !(out->defs = data_alloc(&cd, cd.slots_max)))
        return no_room(&cd);
    const uint8_t *p = pr->file + start, *end = p + cm->total_compressed_size;
    while (cd.slots < cd.slots_max) {
        sl__pq_page_header ph;
        size_t used;
        if (p >= end)
            return corrupt(&cd, "the chunk ends before all its values");
        if ((err = sl__pq_page_header_decode(p, (size_t)(end - p), &ph, &used, errbuf, errlen)))
            return err;
        p += used;
        if ((size_t)ph.compressed_page_size > (size_t)(end - p))
            return corrupt(&cd, "a page runs past its column chunk");
        if (ph.type == SL__PQP_DICTIONARY && ph.has_dict)
            err = read_dictionary(&cd, &ph, p);
        else if ((ph.type == SL__PQP_DATA && ph.has_data) ||
                 (ph.type == SL__PQP_DATA_V2 && ph.has_data_v2))
            err = read_data_page(&cd, &ph, p);
        else if (ph.type == 1 /* INDEX_PAGE */)
            err = SL_OK;
        else
            err = corrupt(&cd, "a page of unknown type or without its header");
        if (err)
            return err;
        p += ph.compressed_page_size;
    }
    out->n_slots = cd.slots;
    return SL_OK;
}
