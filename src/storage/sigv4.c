/* AWS Signature Version 4: the canonical request, the string to sign, the derived signing
 * key and the Authorization header, from the published algorithm. SHA-256 and HMAC come
 * from OpenSSL's libcrypto, which Debian's libcurl (OpenSSL flavour) already loads. */
#include "storage/storage_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define MAX_SIGNED_HEADERS 16

static const char hexdig[] = "0123456789abcdef";

static void hex_encode(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void sl__storage_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(p, n, md);
    hex_encode(md, sizeof md, out);
}

static void hmac(const void *key, size_t klen, const char *msg, size_t mlen,
                 unsigned char out[SHA256_DIGEST_LENGTH])
{
    /* Through a local, so out may be the key (each derivation step feeds the next). */
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int olen = sizeof md;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, md, &olen);
    memcpy(out, md, sizeof md);
}

sl_err sl__storage_uri_encode(sl_buf *b, const char *s, bool keep_slash)
{
    static const char HEX[] = "0123456789ABCDEF";
    sl_err err = SL_OK;
    for (; *s && !err; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'))
            err = sl_buf_append_char(b, (char)c);
        else {
            char e[3] = {'%', HEX[c >> 4], HEX[c & 15]};
            err = sl_buf_append(b, e, 3);
        }
    }
    return err;
}

static int header_cmp(const void *a, const void *b)
{
    return strcmp(((const sl__sigv4_header *)a)->name, ((const sl__sigv4_header *)b)->name);
}

/* Appends a header value trimmed, with inner runs of spaces folded to one. */
static sl_err append_trimmed(sl_buf *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    sl_err err = SL_OK;
    bool space = false;
    for (; *v && !err; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space)
            err = sl_buf_append_char(b, ' ');
        space = false;
        if (!err)
            err = sl_buf_append_char(b, *v);
    }
    return err;
}

sl_err sl__storage_sigv4_sign(const sl__sigv4_request *req, sl_buf *auth, sl_buf *canonical,
                              sl_buf *to_sign)
{
    if (req->n_headers > MAX_SIGNED_HEADERS || strlen(req->amz_date) != 16)
        return SL_ERR_INVALID;
    sl__sigv4_header hs[MAX_SIGNED_HEADERS];
    memcpy(hs, req->headers, req->n_headers * sizeof *hs);
    qsort(hs, req->n_headers, sizeof *hs, header_cmp);

    sl_buf creq, sts, signed_names;
    sl_buf_init(&creq, 1024 * 1024);
    sl_buf_init(&sts, 4096);
    sl_buf_init(&signed_names, 4096);
    sl_err err = sl_buf_appendf(&creq, "%s\n%s\n%s\n", req->method, req->canonical_uri,
                                req->canonical_query);
    for (size_t i = 0; i < req->n_headers && !err; i++) {
        err = sl_buf_appendf(&creq, "%s:", hs[i].name);
        if (!err)
            err = append_trimmed(&creq, hs[i].value);
        if (!err)
            err = sl_buf_append_char(&creq, '\n');
        if (!err)
            err = sl_buf_appendf(&signed_names, "%s%s", i ? ";" : "", hs[i].name);
    }
    if (!err)
        err = sl_buf_appendf(&creq, "\n%s\n%s", signed_names.data ? signed_names.data : "",
                             req->payload_hash);
    if (err)
        goto out;

    char date[9];
    memcpy(date, req->amz_date, 8);
    date[8] = '\0';
    char creq_hash[65];
    sl__storage_sha256_hex(creq.data, creq.len, creq_hash);
    err = sl_buf_appendf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", req->amz_date,
                         date, req->region, req->service, creq_hash);
    if (err)
        goto out;

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
    unsigned char k[SHA256_DIGEST_LENGTH];
    size_t slen = strlen(req->secret_access_key);
    char *ksecret = malloc(slen + 5);
    if (!ksecret) {
        err = SL_ERR_NOMEM;
        goto out;
    }
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, req->secret_access_key, slen + 1);
    hmac(ksecret, slen + 4, date, 8, k);
    OPENSSL_cleanse(ksecret, slen + 4);
    free(ksecret);
    hmac(k, sizeof k, req->region, strlen(req->region), k);
    hmac(k, sizeof k, req->service, strlen(req->service), k);
    hmac(k, sizeof k, "aws4_request", 12, k);
    unsigned char sig[SHA256_DIGEST_LENGTH];
    hmac(k, sizeof k, sts.data, sts.len, sig);
    OPENSSL_cleanse(k, sizeof k);
    char sighex[65];
    hex_encode(sig, sizeof sig, sighex);

    err = sl_buf_appendf(auth,
                         "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                         "SignedHeaders=%s, Signature=%s",
                         req->access_key_id, date, req->region, req->service,
                         signed_names.data ? signed_names.data : "", sighex);
    if (!err && canonical)
        err = sl_buf_append(canonical, creq.data, creq.len);
    if (!err && to_sign)
        err = sl_buf_append(to_sign, sts.data, sts.len);
out:
    sl_buf_cleanup(&creq);
    sl_buf_cleanup(&sts);
    sl_buf_cleanup(&signed_names);
    return err;
}
