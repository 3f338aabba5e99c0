/* The storage interface itself: URI parsing, option defaults and credentials, key checks,
 * and dispatch to the file (file.c) or S3 (s3.c) backend through its ops table. */
#include "storage/storage_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void sl_storage_options_default(sl_storage_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->region = "us-east-1";
    opts->part_size = 8u * 1024 * 1024;
    opts->list_page_keys = 1000;
    opts->max_attempts = 5;
    opts->retry_budget_ms = 30000;
    opts->connect_timeout_ms = 10000;
    opts->stall_timeout_ms = 60000;
}

static bool is_bucket_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

sl_err sl__storage_parse_uri(const char *uri, sl__storage_uri *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (strncmp(uri, "file://", 7) == 0) {
        const char *dir = uri + 7;
        if (!*dir)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                                 "storage uri \"%s\" has no directory", uri);
        if (strlen(dir) >= sizeof out->path)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "storage uri \"%s\" is too long",
                                 uri);
        out->scheme = SL__STORAGE_FILE;
        memcpy(out->path, dir, strlen(dir) + 1);
        return SL_OK;
    }
    if (strncmp(uri, "s3://", 5) != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "storage uri \"%s\" is neither file://DIR nor s3://BUCKET/PREFIX",
                             uri);
    const char *b = uri + 5;
    size_t blen = strcspn(b, "/");
    if (blen < 3 || blen > 63 || !is_alnum_lower(b[0]) || !is_alnum_lower(b[blen - 1]))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "bucket name in \"%s\" must be 3 to 63 characters of a-z 0-9 . - "
                             "starting and ending with a letter or digit",
                             uri);
    for (size_t i = 0; i < blen; i++)
        if (!is_bucket_char(b[i]) || (b[i] == '.' && i > 0 && b[i - 1] == '.'))
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                                 "bucket name in \"%s\" has a bad character at %zu", uri, i);
    out->scheme = SL__STORAGE_S3;
    memcpy(out->bucket, b, blen);
    const char *p = b + blen;
    while (*p == '/')
        p++;
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    if (plen == 0)
        return SL_OK;
    if (plen + 1 >= sizeof out->path)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "prefix of \"%s\" is too long", uri);
    memcpy(out->path, p, plen);
    out->path[plen] = '/';
    out->path[plen + 1] = '\0';
    /* The prefix must itself be a run of valid key segments. */
    char probe[SL_STORAGE_MAX_KEY + 2];
    memcpy(probe, out->path, plen + 2);
    probe[plen] = '\0';
    if (!sl_storage_is_valid_key(probe))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "prefix of \"%s\" has an empty, \".\" or \"..\" segment or a "
                             "control character",
                             uri);
    return SL_OK;
}

bool sl_storage_is_valid_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > SL_STORAGE_MAX_KEY || key[0] == '/')
        return false;
    const char *seg = key;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c != '\0' && c != '/') {
            if (c < 0x20 || c == 0x7f)
                return false;
            continue;
        }
        size_t slen = (size_t)(key + i - seg);
        if (slen == 0 || (slen == 1 && seg[0] == '.') ||
            (slen == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        seg = key + i + 1;
    }
    return true;
}

/* Fills the credentials of o from the environment where the caller left them NULL. */
static sl_err resolve_credentials(sl_storage_options *o, char *errbuf, size_t errlen)
{
    if (!o->access_key_id)
        o->access_key_id = getenv("AWS_ACCESS_KEY_ID");
    if (!o->secret_access_key)
        o->secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
    if (!o->session_token) {
        const char *t = getenv("AWS_SESSION_TOKEN");
        o->session_token = t && *t ? t : NULL;
    }
    if (!o->access_key_id || !*o->access_key_id || !o->secret_access_key || !*o->secret_access_key)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "s3 needs credentials: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY");
    return SL_OK;
}

sl_err sl_storage_open(const char *uri, const sl_storage_options *opts, sl_storage_t **st,
                       char *errbuf, size_t errlen)
{
    sl_storage_options o;
    if (opts)
        o = *opts;
    else
        sl_storage_options_default(&o);
    *st = NULL;
    sl__storage_uri u;
    sl_err err = sl__storage_parse_uri(uri, &u, errbuf, errlen);
    if (err)
        return err;
    if (!o.region || !*o.region)
        o.region = "us-east-1";
    if (o.part_size < SL_STORAGE_MIN_PART_SIZE)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "part size %zu is under S3's minimum of %u bytes", o.part_size,
                             SL_STORAGE_MIN_PART_SIZE);
    if (o.list_page_keys == 0 || o.list_page_keys > 1000 || o.max_attempts == 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG,
                             "list page keys must be 1 to 1000 and max attempts at least 1");
    sl_storage_t *s = NULL;
    if (u.scheme == SL__STORAGE_FILE) {
        err = sl__storage_file_open(u.path, &s, errbuf, errlen);
    } else {
        if ((err = resolve_credentials(&o, errbuf, errlen)))
            return err;
        err = sl__storage_s3_open(&u, &o, &s, errbuf, errlen);
    }
    if (err)
        return err;
    s->opts = o;
    s->opts.endpoint = s->opts.region = NULL;
    s->opts.access_key_id = s->opts.secret_access_key = s->opts.session_token = NULL;
    s->uri = strdup(uri);
    if (!s->uri) {
        s->ops->close(s);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory opening \"%s\"", uri);
    }
    *st = s;
    return SL_OK;
}

void sl_storage_close(sl_storage_t *st)
{
    if (!st)
        return;
    free(st->uri);
    st->ops->close(st);
}

const char *sl_storage_uri(const sl_storage_t *st)
{
    return st->uri;
}

static sl_err check_key(const char *key, char *errbuf, size_t errlen)
{
    if (!key || !sl_storage_is_valid_key(key))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "invalid storage key \"%s\": empty, too long, a leading '/', an "
                             "empty, \".\" or \"..\" segment or a control character",
                             key ? key : "(null)");
    return SL_OK;
}

sl_err sl_storage_get(sl_storage_t *st, const char *key, sl_buf *out, char *errbuf, size_t errlen)
{
    sl_err err = check_key(key, errbuf, errlen);
    return err ? err : st->ops->get(st, key, false, 0, 0, out, errbuf, errlen);
}

sl_err sl_storage_get_range(sl_storage_t *st, const char *key, uint64_t offset, uint64_t len,
                            sl_buf *out, char *errbuf, size_t errlen)
{
    sl_err err = check_key(key, errbuf, errlen);
    if (err)
        return err;
    if (len == 0)
        return SL_OK;
    if (offset > UINT64_MAX - len)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "range %" PRIu64 "+%" PRIu64 " of \"%s\" overflows", offset, len, key);
    return st->ops->get(st, key, true, offset, len, out, errbuf, errlen);
}

sl_err sl_storage_put(sl_storage_t *st, const char *key, const void *data, size_t len, char *errbuf,
                      size_t errlen)
{
    sl_err err = check_key(key, errbuf, errlen);
    return err ? err : st->ops->put(st, key, data, len, false, errbuf, errlen);
}

sl_err sl_storage_put_if_absent(sl_storage_t *st, const char *key, const void *data, size_t len,
                                char *errbuf, size_t errlen)
{
    sl_err err = check_key(key, errbuf, errlen);
    return err ? err : st->ops->put(st, key, data, len, true, errbuf, errlen);
}

sl_err sl_storage_head(sl_storage_t *st, const char *key, sl_storage_info *info, char *errbuf,
                       size_t errlen)
{
    sl_err err = check_key(key, errbuf, errlen);
    return err ? err : st->ops->head(st, key, info, errbuf, errlen);
}

sl_err sl_storage_delete(sl_storage_t *st, const char *key, char *errbuf, size_t errlen)
{
    sl_err err = check_key(key, errbuf, errlen);
    return err ? err : st->ops->del(st, key, errbuf, errlen);
}

sl_err sl_storage_list(sl_storage_t *st, const char *prefix, const char *start_after,
                       sl_storage_list_cb cb, void *opaque, char *errbuf, size_t errlen)
{
    if (prefix && (strlen(prefix) > SL_STORAGE_MAX_KEY || prefix[0] == '/'))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "invalid list prefix \"%s\"", prefix);
    if (start_after && strlen(start_after) > SL_STORAGE_MAX_KEY)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "list start-after is too long");
    return st->ops->list(st, prefix ? prefix : "", start_after ? start_after : "", cb, opaque,
                         errbuf, errlen);
}

sl_err sl_storage_list_temporary(sl_storage_t *st, const char *prefix, sl_storage_list_cb cb,
                                 void *opaque, char *errbuf, size_t errlen)
{
    if (prefix && (strlen(prefix) > SL_STORAGE_MAX_KEY || prefix[0] == '/'))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "invalid list prefix \"%s\"", prefix);
    if (!st->ops->list_temporary)
        return SL_OK;
    return st->ops->list_temporary(st, prefix ? prefix : "", cb, opaque, errbuf, errlen);
}

sl_err sl_storage_delete_temporary(sl_storage_t *st, const char *key, const char *upload_id,
                                   char *errbuf, size_t errlen)
{
    if (!upload_id)
        return sl_storage_delete(st, key, errbuf, errlen);
    sl_err err = check_key(key, errbuf, errlen);
    if (err)
        return err;
    if (!st->ops->delete_temporary)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                             "\"%s\" has no unfinished uploads to abort", st->uri);
    return st->ops->delete_temporary(st, key, upload_id, errbuf, errlen);
}

sl_err sl_storage_upload_new(sl_storage_t *st, const char *key, sl_storage_upload_t **up,
                             char *errbuf, size_t errlen)
{
    *up = NULL;
    sl_err err = check_key(key, errbuf, errlen);
    return err ? err : st->ops->upload_new(st, key, up, errbuf, errlen);
}

sl_ostream *sl_storage_upload_stream(sl_storage_upload_t *up)
{
    return &up->os;
}

sl_err sl_storage_upload_commit(sl_storage_upload_t *up, char *errbuf, size_t errlen)
{
    return up->st->ops->upload_commit(up, errbuf, errlen);
}

void sl_storage_upload_free(sl_storage_upload_t *up)
{
    if (up)
        up->st->ops->upload_free(up);
}
