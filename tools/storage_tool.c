/* sluice-storage-tool: every storage call from the command line, so the integration test
 * (tests/integration/test_storage.py) and bench/storage.sh drive file:// and s3:// stores
 * through the real module. Exit codes: 0 ok, 2 not found, 3 already exists, 1 other.
 *
 *   sluice-storage-tool [--endpoint URL] [--region R] [--path-style] [--part-size BYTES]
 *                       [--page-keys N] [--attempts N] [--budget-ms MS] URI COMMAND ARGS
 *   put KEY FILE | put-if-absent KEY FILE | upload KEY FILE ('-' is stdin) | get KEY |
 *   get-range KEY OFFSET LEN | head KEY | ls [PREFIX [START_AFTER]] | rm KEY |
 *   race KEY THREADS (each thread put-if-absent's its own body; prints the winner count) |
 *   fill PREFIX COUNT SIZE (COUNT puts of SIZE bytes to PREFIX000000...; for benchmarks) |
 *   parquet KEY ROWS (the Parquet writer streams ROWS rows of (id INT64, name STRING) into
 *   an upload; prints "rows file_bytes") */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet/parquet.h"
#include "storage/storage.h"

static int exit_code(sl_err err)
{
    return err == SL_OK ? 0 : err == SL_ERR_NOT_FOUND ? 2 : err == SL_ERR_EXISTS ? 3 : 1;
}

static int fail(sl_err err, const char *eb)
{
    fprintf(stderr, "error: %s: %s\n", sl_strerror(err), eb);
    return exit_code(err);
}

static bool parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *v = x;
    return true;
}

/* Reads a whole file ('-': stdin) into b. */
static sl_err read_file(const char *path, sl_buf *b, char *eb, size_t el)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return sl_errbuf_set(eb, el, SL_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    sl_err err = SL_OK;
    while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        err = sl_buf_append(b, chunk, n);
    if (f != stdin)
        fclose(f);
    return err ? sl_errbuf_set(eb, el, err, "could not read \"%s\"", path) : SL_OK;
}

static sl_err print_entry(void *opaque, const sl_storage_entry *e)
{
    printf("%s\t%" PRIu64 "\t%" PRId64 "\n", e->key, e->size, e->mtime_ms);
    return SL_OK;
}

typedef struct racer {
    sl_storage_t *st;
    const char *key;
    int id;
    sl_err err;
    char eb[256];
} racer;

static void *race_one(void *p)
{
    racer *r = p;
    char body[64];
    int n = snprintf(body, sizeof body, "writer %d\n", r->id);
    r->err = sl_storage_put_if_absent(r->st, r->key, body, (size_t)n, r->eb, sizeof r->eb);
    return NULL;
}

/* Streams a file into an upload in 64 KiB writes (as an encoder would). */
static sl_err upload(sl_storage_t *st, const char *key, const char *path, char *eb, size_t el)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return sl_errbuf_set(eb, el, SL_ERR_IO, "could not open \"%s\": %s", path, strerror(errno));
    sl_storage_upload_t *up = NULL;
    sl_err err = sl_storage_upload_new(st, key, &up, eb, el);
    static char chunk[65536];
    size_t n;
    while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        sl_ostream *os = sl_storage_upload_stream(up);
        if ((err = os->write(os, chunk, n)))
            sl_errbuf_set(eb, el, err, "%s", os->errbuf);
    }
    if (!err && ferror(f))
        err = sl_errbuf_set(eb, el, SL_ERR_IO, "could not read \"%s\"", path);
    if (!err)
        err = sl_storage_upload_commit(up, eb, el);
    sl_storage_upload_free(up);
    if (f != stdin)
        fclose(f);
    return err;
}

/* The Parquet writer on an upload stream: what the lake sink does with a data file. */
static sl_err parquet(sl_storage_t *st, const char *key, uint64_t rows, char *eb, size_t el)
{
    static const sl_pq_column cols[] = {
        {"id", SL_PQ_INT64, SL_PQ_LOGICAL_NONE, SL_PQ_REQUIRED},
        {"name", SL_PQ_BYTE_ARRAY, SL_PQ_LOGICAL_STRING, SL_PQ_OPTIONAL},
    };
    sl_pq_writer_options po;
    sl_pq_writer_options_default(&po);
    po.codec = SL_PQ_UNCOMPRESSED; /* incompressible-ish names keep the file large */
    sl_storage_upload_t *up = NULL;
    sl_pq_writer_t *pw = NULL;
    sl_err err = sl_storage_upload_new(st, key, &up, eb, el);
    if (!err)
        err = sl_pq_writer_new(cols, 2, &po, sl_storage_upload_stream(up), &pw, eb, el);
    for (uint64_t i = 0; !err && i < rows; i++) {
        char name[64];
        int n = snprintf(name, sizeof name, "name-%016" PRIx64, i * UINT64_C(0x9e3779b97f4a7c15));
        sl_pq_value v[2] = {{.v.i64 = (int64_t)i}, {.is_null = i % 7 == 0}};
        v[1].v.bytes.ptr = name;
        v[1].v.bytes.len = (size_t)n;
        err = sl_pq_writer_write_row(pw, v, eb, el);
    }
    sl_pq_file_info info;
    if (!err)
        err = sl_pq_writer_finish(pw, &info, eb, el);
    if (!err)
        err = sl_storage_upload_commit(up, eb, el);
    if (!err)
        printf("%" PRIu64 " %" PRIu64 "\n", info.rows, info.file_bytes);
    sl_pq_writer_free(pw);
    sl_storage_upload_free(up);
    return err;
}

int main(int argc, char **argv)
{
    sl_storage_options opts;
    sl_storage_options_default(&opts);
    int i = 1;
    uint64_t v;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--path-style") == 0) {
            opts.path_style = true;
            continue;
        }
        if (!val)
            break;
        i++;
        if (strcmp(a, "--endpoint") == 0)
            opts.endpoint = val;
        else if (strcmp(a, "--region") == 0)
            opts.region = val;
        else if (strcmp(a, "--part-size") == 0 && parse_u64(val, &v))
            opts.part_size = (size_t)v;
        else if (strcmp(a, "--page-keys") == 0 && parse_u64(val, &v) && v <= 1000)
            opts.list_page_keys = (unsigned)v;
        else if (strcmp(a, "--attempts") == 0 && parse_u64(val, &v) && v <= 100)
            opts.max_attempts = (unsigned)v;
        else if (strcmp(a, "--budget-ms") == 0 && parse_u64(val, &v) && v <= 3600000)
            opts.retry_budget_ms = (unsigned)v;
        else {
            fprintf(stderr, "error: bad option \"%s\" \"%s\"\n", a, val);
            return 1;
        }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: sluice-storage-tool [options] URI COMMAND ARGS (see the source)\n");
        return 1;
    }
    const char *uri = argv[i], *cmd = argv[i + 1];
    char **args = argv + i + 2;
    int nargs = argc - i - 2;
    char eb[512] = "";
    sl_storage_t *st = NULL;
    sl_err err = sl_storage_open(uri, &opts, &st, eb, sizeof eb);
    if (err)
        return fail(err, eb);
    sl_buf b;
    sl_buf_init(&b, (size_t)1 << 31);
    uint64_t off, len;
    if (strcmp(cmd, "put") == 0 && nargs == 2) {
        if (!(err = read_file(args[1], &b, eb, sizeof eb)))
            err = sl_storage_put(st, args[0], b.data, b.len, eb, sizeof eb);
    } else if (strcmp(cmd, "put-if-absent") == 0 && nargs == 2) {
        if (!(err = read_file(args[1], &b, eb, sizeof eb)))
            err = sl_storage_put_if_absent(st, args[0], b.data, b.len, eb, sizeof eb);
    } else if (strcmp(cmd, "upload") == 0 && nargs == 2) {
        err = upload(st, args[0], args[1], eb, sizeof eb);
    } else if (strcmp(cmd, "get") == 0 && nargs == 1) {
        if (!(err = sl_storage_get(st, args[0], &b, eb, sizeof eb)))
            fwrite(b.data ? b.data : "", 1, b.len, stdout);
    } else if (strcmp(cmd, "get-range") == 0 && nargs == 3 && parse_u64(args[1], &off) &&
               parse_u64(args[2], &len)) {
        if (!(err = sl_storage_get_range(st, args[0], off, len, &b, eb, sizeof eb)))
            fwrite(b.data ? b.data : "", 1, b.len, stdout);
    } else if (strcmp(cmd, "head") == 0 && nargs == 1) {
        sl_storage_info info;
        if (!(err = sl_storage_head(st, args[0], &info, eb, sizeof eb)))
            printf("%" PRIu64 "\t%" PRId64 "\n", info.size, info.mtime_ms);
    } else if (strcmp(cmd, "ls") == 0 && nargs <= 2) {
        err = sl_storage_list(st, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL,
                              print_entry, NULL, eb, sizeof eb);
    } else if (strcmp(cmd, "rm") == 0 && nargs == 1) {
        err = sl_storage_delete(st, args[0], eb, sizeof eb);
    } else if (strcmp(cmd, "race") == 0 && nargs == 2 && parse_u64(args[1], &v) && v >= 1 &&
               v <= 64) {
        racer rs[64];
        pthread_t th[64];
        for (int k = 0; k < (int)v; k++) {
            rs[k] = (racer){.st = st, .key = args[0], .id = k};
            pthread_create(&th[k], NULL, race_one, &rs[k]);
        }
        int won = 0, lost = 0;
        for (int k = 0; k < (int)v; k++) {
            pthread_join(th[k], NULL);
            if (rs[k].err == SL_OK)
                won++;
            else if (rs[k].err == SL_ERR_EXISTS)
                lost++;
            else
                fprintf(stderr, "racer %d: %s: %s\n", k, sl_strerror(rs[k].err), rs[k].eb);
        }
        printf("won %d lost %d\n", won, lost);
    } else if (strcmp(cmd, "parquet") == 0 && nargs == 2 && parse_u64(args[1], &v)) {
        err = parquet(st, args[0], v, eb, sizeof eb);
    } else if (strcmp(cmd, "fill") == 0 && nargs == 3 && parse_u64(args[1], &v) &&
               parse_u64(args[2], &len) && len <= ((uint64_t)1 << 30)) {
        char *body = malloc(len ? len : 1);
        if (!body)
            err = sl_errbuf_set(eb, sizeof eb, SL_ERR_NOMEM, "out of memory");
        for (uint64_t k = 0; body && k < len; k++)
            body[k] = (char)('a' + k % 26);
        for (uint64_t k = 0; body && !err && k < v; k++) {
            char key[SL_STORAGE_MAX_KEY + 1];
            snprintf(key, sizeof key, "%s%06" PRIu64, args[0], k);
            err = sl_storage_put(st, key, body, (size_t)len, eb, sizeof eb);
        }
        free(body);
    } else {
        fprintf(stderr, "error: unknown command or arguments \"%s\"\n", cmd);
        err = SL_ERR_INVALID;
        eb[0] = '\0';
    }
    sl_buf_cleanup(&b);
    sl_storage_close(st);
    if (err && eb[0])
        return fail(err, eb);
    return exit_code(err);
}
