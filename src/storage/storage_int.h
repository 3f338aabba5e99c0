/* Internals shared inside the storage module: the backend table each store fills, URI
 * parsing, AWS Signature V4 and the S3 XML answers (kept apart from the HTTP code so the
 * unit tests and the fuzz target reach them without a server). */
#ifndef SL_STORAGE_STORAGE_INT_H
#define SL_STORAGE_STORAGE_INT_H

#include "storage/storage.h"

/* Bounds on S3's answers: a body past SL__S3_MAX_BODY is refused before parsing, and so is
 * a page with more entries than any S3 server sends (max-keys is at most 1000). */
#define SL__S3_MAX_BODY      (8u * 1024 * 1024)
#define SL__S3_MAX_PAGE_KEYS 10000u
#define SL__S3_MAX_TOKEN     4096u

typedef struct sl__storage_ops {
    sl_err (*get)(sl_storage_t *st, const char *key, bool ranged, uint64_t offset, uint64_t len,
                  sl_buf *out, char *errbuf, size_t errlen);
    sl_err (*put)(sl_storage_t *st, const char *key, const void *data, size_t len, bool if_absent,
                  char *errbuf, size_t errlen);
    sl_err (*head)(sl_storage_t *st, const char *key, sl_storage_info *info, char *errbuf,
                   size_t errlen);
    sl_err (*del)(sl_storage_t *st, const char *key, char *errbuf, size_t errlen);
    sl_err (*list)(sl_storage_t *st, const char *prefix, const char *start_after,
                   sl_storage_list_cb cb, void *opaque, char *errbuf, size_t errlen);
    /* NULL: the backend leaves no temporary objects behind */
    sl_err (*list_temporary)(sl_storage_t *st, const char *prefix, sl_storage_list_cb cb,
                             void *opaque, char *errbuf, size_t errlen);
    /* A listed temporary entry that has an upload_id; NULL when none ever has */
    sl_err (*delete_temporary)(sl_storage_t *st, const char *key, const char *upload_id,
                               char *errbuf, size_t errlen);
    sl_err (*upload_new)(sl_storage_t *st, const char *key, sl_storage_upload_t **up, char *errbuf,
                         size_t errlen);
    sl_err (*upload_commit)(sl_storage_upload_t *up, char *errbuf, size_t errlen);
    void (*upload_free)(sl_storage_upload_t *up);
    void (*close)(sl_storage_t *st);
} sl__storage_ops;

/* Every backend's handle starts with this. */
struct sl_storage {
    const sl__storage_ops *ops;
    char *uri;
    sl_storage_options opts; /* string members are NULL here: backends copy what they keep */
};

/* Every backend's upload starts with this; os is what sl_storage_upload_stream returns. */
struct sl_storage_upload {
    sl_ostream os;
    sl_storage_t *st;
    char *key;
};

typedef enum sl__storage_scheme { SL__STORAGE_FILE, SL__STORAGE_S3 } sl__storage_scheme;

typedef struct sl__storage_uri {
    sl__storage_scheme scheme;
    char bucket[64]; /* s3: 3-63 of [a-z0-9.-], starting and ending with a letter or digit */
    /* file: the directory as given. s3: the key prefix without a leading '/', ending in '/'
     * unless empty ("s3://b/x//y" is refused: S3 keys would hold an empty segment). */
    char path[SL_STORAGE_MAX_KEY + 1];
} sl__storage_uri;

SL_MUST_CHECK sl_err sl__storage_parse_uri(const char *uri, sl__storage_uri *out, char *errbuf,
                                           size_t errlen);

SL_MUST_CHECK sl_err sl__storage_file_open(const char *dir, sl_storage_t **st, char *errbuf,
                                           size_t errlen);
/* opts is complete (defaults applied, credentials resolved); strings are copied. */
SL_MUST_CHECK sl_err sl__storage_s3_open(const sl__storage_uri *u, const sl_storage_options *opts,
                                         sl_storage_t **st, char *errbuf, size_t errlen);

/* ---- AWS Signature V4 (sigv4.c) ---- */

typedef struct sl__sigv4_header {
    const char *name; /* lowercase */
    const char *value;
} sl__sigv4_header;

typedef struct sl__sigv4_request {
    const char *method;
    const char *canonical_uri;       /* encoded path, "/" at least */
    const char *canonical_query;     /* encoded, sorted "a=1&b=2", "" if none */
    const sl__sigv4_header *headers; /* every signed header, any order, at most 16 */
    size_t n_headers;
    const char *payload_hash; /* hex SHA-256 of the body (or "UNSIGNED-PAYLOAD") */
    const char *amz_date;     /* "YYYYMMDDTHHMMSSZ" */
    const char *region;
    const char *service;
    const char *access_key_id;
    const char *secret_access_key;
} sl__sigv4_request;

/* Appends the Authorization header's value to auth; canonical and to_sign, when not NULL,
 * get the canonical request and the string to sign (for tests and debugging). */
SL_MUST_CHECK sl_err sl__storage_sigv4_sign(const sl__sigv4_request *req, sl_buf *auth,
                                            sl_buf *canonical, sl_buf *to_sign);
/* Lowercase hex SHA-256 of n bytes into out[65]. */
void sl__storage_sha256_hex(const void *p, size_t n, char out[65]);
/* Appends s percent-encoded as SigV4 wants: everything but A-Za-z0-9-._~ (and '/' when
 * keep_slash, for paths) as %XX with uppercase hex. */
SL_MUST_CHECK sl_err sl__storage_uri_encode(sl_buf *b, const char *s, bool keep_slash);

/* ---- S3 XML answers (xml.c), parsed with libxml2, no DTD, no network ---- */

typedef struct sl__s3_object {
    char *key; /* as S3 sent it (the full key, prefix included) */
    uint64_t size;
    int64_t mtime_ms;
    char *upload_id; /* an unfinished multipart upload's id (its mtime: Initiated); else NULL */
} sl__s3_object;

typedef struct sl__s3_list_page {
    sl__s3_object *objects;
    size_t n;
    bool truncated;
    char *next_token;     /* NextContinuationToken, or NextKeyMarker of uploads; NULL if none */
    char *next_upload_id; /* uploads only: NextUploadIdMarker; NULL if none */
} sl__s3_list_page;

/* ListObjectsV2's ListBucketResult. SL_ERR_CORRUPT naming what was wrong. */
SL_MUST_CHECK sl_err sl__storage_xml_list(const char *xml, size_t len, sl__s3_list_page *page,
                                          char *errbuf, size_t errlen);
/* ListMultipartUploads' ListMultipartUploadsResult: each Upload as an object of size 0 with
 * its UploadId, its Initiated time as mtime_ms. A truncated page has a next_token. */
SL_MUST_CHECK sl_err sl__storage_xml_uploads(const char *xml, size_t len, sl__s3_list_page *page,
                                             char *errbuf, size_t errlen);
void sl__storage_list_page_cleanup(sl__s3_list_page *page);
/* InitiateMultipartUploadResult's UploadId (malloc'ed into *upload_id). */
SL_MUST_CHECK sl_err sl__storage_xml_upload_id(const char *xml, size_t len, char **upload_id,
                                               char *errbuf, size_t errlen);
/* CompleteMultipartUpload answers 200 with either a result document or an Error document:
 * SL_OK for the first, SL_ERR_IO quoting Code and Message for the second, SL_ERR_CORRUPT
 * for a body that is not XML. */
SL_MUST_CHECK sl_err sl__storage_xml_complete(const char *xml, size_t len, char *errbuf,
                                              size_t errlen);
/* An Error document's Code and Message (each "" when absent); false when xml is not one. */
bool sl__storage_xml_error(const char *xml, size_t len, char *code, size_t codelen, char *msg,
                           size_t msglen);

#endif
