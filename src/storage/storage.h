/* Object storage behind one interface: a local directory (file://DIR) or an S3 bucket and
 * prefix (s3://BUCKET/PREFIX, any S3-compatible server, AWS Signature V4 over libcurl).
 * The Delta log and the lake sink read and write through it, so a table lives on a disk
 * or in a bucket alike. Keys are relative to the store's root ("_delta_log/00...0.json").
 *
 * Pointers passed in are borrowed for the call unless a comment says otherwise.
 * @thread every function may be called from any thread on one shared sl_storage_t; an
 * upload (sl_storage_upload_t) belongs to one thread at a time. */
#ifndef SL_STORAGE_STORAGE_H
#define SL_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/ostream.h"

typedef struct sl_storage sl_storage_t;               /* variable name: st */
typedef struct sl_storage_upload sl_storage_upload_t; /* variable name: up */

/* Longest key accepted (S3's own limit, in bytes, prefix included). */
#define SL_STORAGE_MAX_KEY 1024
/* S3 refuses parts under 5 MiB (but the last) and more than 10,000 parts. */
#define SL_STORAGE_MIN_PART_SIZE (5u * 1024 * 1024)
#define SL_STORAGE_MAX_PARTS     10000u

typedef struct sl_storage_options {
    /* s3:// only. NULL: https://s3.REGION.amazonaws.com. Otherwise "http[s]://HOST[:PORT]"
     * of an S3-compatible server (MinIO, moto, R2). */
    const char *endpoint;
    const char *region; /* default "us-east-1" */
    /* true: ENDPOINT/BUCKET/KEY; false: BUCKET.HOST/KEY (virtual-hosted). Default false. */
    bool path_style;
    /* Credentials; NULL takes AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and (optional)
     * AWS_SESSION_TOKEN from the environment at open. */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    /* Upload streams: bytes per multipart part, and the size past which an upload turns
     * multipart (smaller ones are one PUT). Default 8 MiB, at least 5 MiB. */
    size_t part_size;
    unsigned list_page_keys;     /* max-keys of one ListObjectsV2 page; default 1000 */
    unsigned max_attempts;       /* per request, first try included; default 5 */
    unsigned retry_budget_ms;    /* total time for the retries of one request; default 30 s */
    unsigned connect_timeout_ms; /* default 10 s */
    /* A transfer slower than 1 KiB/s for this long fails (and is retried); default 60 s. */
    unsigned stall_timeout_ms;
} sl_storage_options;

void sl_storage_options_default(sl_storage_options *opts);

/* Opens "file://DIR" (DIR created if missing) or "s3://BUCKET[/PREFIX]". opts may be NULL
 * (defaults). s3:// does not touch the network here: a wrong bucket or credentials show at
 * the first request. SL_ERR_CONFIG for a bad URI, option or missing credentials. */
SL_MUST_CHECK sl_err sl_storage_open(const char *uri, const sl_storage_options *opts,
                                     sl_storage_t **st, char *errbuf, size_t errlen);
/* Frees st (NULL is a no-op). Uploads must be freed first. */
void sl_storage_close(sl_storage_t *st);

/* The URI st was opened with, for messages. */
const char *sl_storage_uri(const sl_storage_t *st);

/* Whether key is one this module accepts: 1 to SL_STORAGE_MAX_KEY bytes with the prefix,
 * no NUL or control byte, no leading '/', no empty, "." or ".." segment. Every call
 * below refuses other keys with SL_ERR_INVALID. */
bool sl_storage_is_valid_key(const char *key);

/* Errors of every call below: SL_ERR_NOT_FOUND (no such key; a missing bucket is
 * SL_ERR_CONFIG), SL_ERR_CONFIG (access denied, bad credentials, no such bucket),
 * SL_ERR_IO (the server or disk failed after the retries), SL_ERR_TIMEOUT, with S3's
 * error Code and Message quoted in errbuf. */

/* Appends the whole object to out (SL_ERR_TOO_LARGE past out's cap; out then holds its
 * old contents). */
SL_MUST_CHECK sl_err sl_storage_get(sl_storage_t *st, const char *key, sl_buf *out, char *errbuf,
                                    size_t errlen);
/* Appends bytes [offset, offset + len) of the object to out, fewer at its end.
 * SL_ERR_INVALID when offset is at or past the end (an empty object has no range). */
SL_MUST_CHECK sl_err sl_storage_get_range(sl_storage_t *st, const char *key, uint64_t offset,
                                          uint64_t len, sl_buf *out, char *errbuf, size_t errlen);

/* Writes the object whole, replacing one of the same key. Readers see the old or the new
 * contents, never a mix. */
SL_MUST_CHECK sl_err sl_storage_put(sl_storage_t *st, const char *key, const void *data, size_t len,
                                    char *errbuf, size_t errlen);
/* Writes the object only if the key does not exist: SL_ERR_EXISTS (and nothing written)
 * when it does, so of writers racing on one key exactly one gets SL_OK. file:// writes a
 * temporary file, fsyncs, link()s it to the key and fsyncs the directory; s3:// sends
 * If-None-Match: * (412 is SL_ERR_EXISTS). A retried S3 request answered 412 compares the
 * stored object with data: equal means the earlier try won, and the call returns SL_OK. */
SL_MUST_CHECK sl_err sl_storage_put_if_absent(sl_storage_t *st, const char *key, const void *data,
                                              size_t len, char *errbuf, size_t errlen);

typedef struct sl_storage_info {
    uint64_t size;
    int64_t mtime_ms; /* last modification, ms since the epoch (S3: second precision) */
} sl_storage_info;

SL_MUST_CHECK sl_err sl_storage_head(sl_storage_t *st, const char *key, sl_storage_info *info,
                                     char *errbuf, size_t errlen);

/* Deletes the object; a key that does not exist is not an error (S3 answers alike). */
SL_MUST_CHECK sl_err sl_storage_delete(sl_storage_t *st, const char *key, char *errbuf,
                                       size_t errlen);

typedef struct sl_storage_entry {
    const char *key; /* relative to the store's root; valid during the callback */
    uint64_t size;
    int64_t mtime_ms;
    /* sl_storage_list_temporary on s3://: the unfinished multipart upload's id (size is then
     * 0 and mtime_ms its start); NULL otherwise. Valid during the callback. */
    const char *upload_id;
} sl_storage_entry;

/* Called once per listed object, in ascending byte order of keys. Returning anything but
 * SL_OK stops the listing, and sl_storage_list returns that code. */
typedef sl_err (*sl_storage_list_cb)(void *opaque, const sl_storage_entry *e);

/* Lists every object whose key starts with prefix ("" or NULL: all) and sorts after
 * start_after (NULL or "": from the first), across all pages (ListObjectsV2 continuation
 * tokens). file:// skips this module's temporary files. */
SL_MUST_CHECK sl_err sl_storage_list(sl_storage_t *st, const char *prefix, const char *start_after,
                                     sl_storage_list_cb cb, void *opaque, char *errbuf,
                                     size_t errlen);

/* Lists what writers killed mid-write left under prefix, which sl_storage_list never shows:
 * on file:// the temporary files (".sl-tmp-*" beside their targets), on s3:// the unfinished
 * multipart uploads (no object, but their parts are stored and billed). For a vacuum: each
 * may be given to sl_storage_delete_temporary; a live writer's is among them too, so delete
 * only what is older than any write can take (mtime_ms). */
SL_MUST_CHECK sl_err sl_storage_list_temporary(sl_storage_t *st, const char *prefix,
                                               sl_storage_list_cb cb, void *opaque, char *errbuf,
                                               size_t errlen);
/* Deletes an entry sl_storage_list_temporary listed: the file, or on s3:// aborts the upload
 * (upload_id as listed; one already gone is not an error). */
SL_MUST_CHECK sl_err sl_storage_delete_temporary(sl_storage_t *st, const char *key,
                                                 const char *upload_id, char *errbuf,
                                                 size_t errlen);

/* ---- upload streams ---- */

/* Starts writing key through an output stream (sl_storage_upload_stream). Nothing is
 * visible under key until sl_storage_upload_commit succeeds; it then replaces any object
 * of that key. file:// writes a temporary file in the key's directory and renames it;
 * s3:// buffers part_size bytes, then turns into a multipart upload (one part per
 * part_size), and a small object is one PUT at commit. */
SL_MUST_CHECK sl_err sl_storage_upload_new(sl_storage_t *st, const char *key,
                                           sl_storage_upload_t **up, char *errbuf, size_t errlen);
/* The stream to write into (owned by up). Its flush makes bytes durable on file:// and
 * does nothing on s3:// (nothing is durable there before commit). */
sl_ostream *sl_storage_upload_stream(sl_storage_upload_t *up);
/* Makes the object visible (file: fsync, rename, fsync of the directory; s3: last part and
 * CompleteMultipartUpload, or one PUT). On failure nothing is visible; free up either way. */
SL_MUST_CHECK sl_err sl_storage_upload_commit(sl_storage_upload_t *up, char *errbuf, size_t errlen);
/* Frees up; an upload not committed is abandoned (temporary file removed, multipart upload
 * aborted). NULL is a no-op. */
void sl_storage_upload_free(sl_storage_upload_t *up);

#endif
