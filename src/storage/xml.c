/* S3's XML answers (ListObjectsV2, ListMultipartUploads, InitiateMultipartUpload,
 * CompleteMultipartUpload, Error)
 * read with libxml2's tree parser. The body is hostile input: its size is capped before
 * parsing, libxml2 runs without network, DTD loading or entity substitution, a document
 * with a DTD is refused outright, and every count and string length is bounded here. */
#include "storage/storage_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "core/time.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

/* Parses xml, refusing oversize bodies and DTDs. The root must be named root (any root
 * when root is NULL). */
static sl_err parse_doc(const char *xml, size_t len, const char *root, xmlDocPtr *out, char *errbuf,
                        size_t errlen)
{
    *out = NULL;
    if (len > SL__S3_MAX_BODY)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                             "s3 answer of %zu bytes is over the limit of %u", len,
                             SL__S3_MAX_BODY);
    pthread_once(&xml_once, xml_init);
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, NULL, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                      XML_PARSE_NOCDATA);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        const char *msg = e && e->message ? e->message : "unknown error";
        int mlen = (int)strcspn(msg, "\n");
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "s3 answer is not well-formed xml (line %d: %.*s)", e ? e->line : 0,
                             mlen > 200 ? 200 : mlen, msg);
    }
    xmlNodePtr r = xmlDocGetRootElement(doc);
    if (doc->intSubset || doc->extSubset || !r) {
        xmlFreeDoc(doc);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "s3 answer has a document type declaration or no root element");
    }
    if (root && strcmp((const char *)r->name, root) != 0) {
        sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT, "s3 answer's root is <%.64s>, not <%s>",
                      (const char *)r->name, root);
        xmlFreeDoc(doc);
        return SL_ERR_CORRUPT;
    }
    *out = doc;
    return SL_OK;
}

/* The first element child of n named name, or NULL. */
static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

/* Copies the text of n (its text children, concatenated) into out[cap]; false when it
 * does not fit. A NULL n is the empty string. */
static bool text_of(xmlNodePtr n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    if (!n)
        return true;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        if (c->type != XML_TEXT_NODE || !c->content)
            continue;
        size_t l = strlen((const char *)c->content);
        if (l >= cap - len)
            return false;
        memcpy(out + len, c->content, l + 1);
        len += l;
    }
    return true;
}

static sl_err parse_u64(const char *s, uint64_t *v)
{
    if (!*s)
        return SL_ERR_CORRUPT;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
            return SL_ERR_CORRUPT;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return SL_OK;
}

void sl__storage_list_page_cleanup(sl__s3_list_page *page)
{
    for (size_t i = 0; i < page->n; i++) {
        free(page->objects[i].key);
        free(page->objects[i].upload_id);
    }
    free(page->objects);
    free(page->next_token);
    free(page->next_upload_id);
    memset(page, 0, sizeof *page);
}

/* The text of root's child name, strdup'ed into *out (NULL when absent or empty); false
 * when over SL__S3_MAX_TOKEN bytes or out of memory. */
static bool dup_child(xmlNodePtr root, const char *name, char **out)
{
    char text[SL__S3_MAX_TOKEN + 1];
    *out = NULL;
    if (!text_of(child(root, name), text, sizeof text))
        return false;
    return !text[0] || (*out = strdup(text)) != NULL;
}

/* The shape both listings share: entries named entry under the root, each with a Key
 * and a time named time_name (and, for objects, a Size; for uploads, an UploadId), then
 * IsTruncated and the marker named next_name that continues a truncated listing. */
typedef struct listing {
    const char *root, *entry, *time_name, *next_name;
    bool uploads;
} listing;

static sl_err parse_entry(xmlNodePtr c, const listing *l, size_t i, sl__s3_object *o, char *errbuf,
                          size_t errlen)
{
    char text[SL__S3_MAX_TOKEN + 1];
    if (!text_of(child(c, "Key"), text, SL_STORAGE_MAX_KEY + 1) || !text[0])
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "s3 listing entry %zu has no key or one over %d bytes", i,
                             SL_STORAGE_MAX_KEY);
    if (!(o->key = strdup(text)))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    if (l->uploads) {
        if (!dup_child(c, "UploadId", &o->upload_id) || !o->upload_id)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                                 "s3 upload listing entry \"%s\" has no UploadId or one over %u "
                                 "bytes (or memory ran out)",
                                 o->key, SL__S3_MAX_TOKEN);
    } else if (!text_of(child(c, "Size"), text, 32) || parse_u64(text, &o->size)) {
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "s3 listing entry \"%s\" has a bad size \"%.32s\"", o->key, text);
    }
    int64_t us;
    if (!text_of(child(c, l->time_name), text, 64) ||
        sl_time_parse_rfc3339(text, strlen(text), &us))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                             "s3 listing entry \"%s\" has a bad %s \"%.64s\"", o->key, l->time_name,
                             text);
    o->mtime_ms = us / 1000;
    return SL_OK;
}

static sl_err parse_listing(const char *xml, size_t len, const listing *l, sl__s3_list_page *page,
                            char *errbuf, size_t errlen)
{
    memset(page, 0, sizeof *page);
    xmlDocPtr doc;
    sl_err err = parse_doc(xml, len, l->root, &doc, errbuf, errlen);
    if (err)
        return err;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    char text[16];
    size_t count = 0;
    for (xmlNodePtr c = root->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, l->entry) == 0)
            count++;
    if (count > SL__S3_MAX_PAGE_KEYS) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "s3 listing page has %zu entries, over the limit of %u", count,
                            SL__S3_MAX_PAGE_KEYS);
        goto out;
    }
    if (count && !(page->objects = calloc(count, sizeof *page->objects))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (xmlNodePtr c = root->children; c && !err; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, l->entry) != 0)
            continue;
        err = parse_entry(c, l, page->n, &page->objects[page->n], errbuf, errlen);
        page->n++; /* counted even when refused, so the cleanup frees what it holds */
    }
    if (err)
        goto out;
    if (!text_of(child(root, "IsTruncated"), text, sizeof text)) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT, "s3 listing has a bad IsTruncated");
        goto out;
    }
    page->truncated = strcmp(text, "true") == 0;
    if (!dup_child(root, l->next_name, &page->next_token) ||
        (l->uploads && !dup_child(root, "NextUploadIdMarker", &page->next_upload_id))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "s3 listing's continuation marker is over %u bytes (or memory ran "
                            "out)",
                            SL__S3_MAX_TOKEN);
        goto out;
    }
    if (page->truncated && !page->next_token)
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "s3 listing is truncated but has no continuation token");
out:
    xmlFreeDoc(doc);
    if (err)
        sl__storage_list_page_cleanup(page);
    return err;
}

sl_err sl__storage_xml_list(const char *xml, size_t len, sl__s3_list_page *page, char *errbuf,
                            size_t errlen)
{
    static const listing objects = {"ListBucketResult", "Contents", "LastModified",
                                    "NextContinuationToken", false};
    return parse_listing(xml, len, &objects, page, errbuf, errlen);
}

sl_err sl__storage_xml_uploads(const char *xml, size_t len, sl__s3_list_page *page, char *errbuf,
                               size_t errlen)
{
    static const listing uploads = {"ListMultipartUploadsResult", "Upload", "Initiated",
                                    "NextKeyMarker", true};
    return parse_listing(xml, len, &uploads, page, errbuf, errlen);
}

sl_err sl__storage_xml_upload_id(const char *xml, size_t len, char **upload_id, char *errbuf,
                                 size_t errlen)
{
    *upload_id = NULL;
    xmlDocPtr doc;
    sl_err err = parse_doc(xml, len, "InitiateMultipartUploadResult", &doc, errbuf, errlen);
    if (err)
        return err;
    char text[SL__S3_MAX_TOKEN + 1];
    if (!text_of(child(xmlDocGetRootElement(doc), "UploadId"), text, sizeof text) || !text[0])
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CORRUPT,
                            "s3 answer to a multipart initiation has no usable UploadId");
    else if (!(*upload_id = strdup(text)))
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    xmlFreeDoc(doc);
    return err;
}

sl_err sl__storage_xml_complete(const char *xml, size_t len, char *errbuf, size_t errlen)
{
    char code[128], msg[512];
    if (sl__storage_xml_error(xml, len, code, sizeof code, msg, sizeof msg))
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO,
                             "s3 refused to complete the multipart upload: %s: %s", code, msg);
    /* Any other well-formed answer is success: AWS's root is CompleteMultipartUploadResult,
     * some compatible servers name it otherwise (moto: ...Response). */
    xmlDocPtr doc;
    sl_err err = parse_doc(xml, len, NULL, &doc, errbuf, errlen);
    xmlFreeDoc(doc);
    return err;
}

bool sl__storage_xml_error(const char *xml, size_t len, char *code, size_t codelen, char *msg,
                           size_t msglen)
{
    xmlDocPtr doc;
    code[0] = msg[0] = '\0';
    if (parse_doc(xml, len, "Error", &doc, NULL, 0))
        return false;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    /* Over-long values are cut rather than dropped: they only feed a message. */
    char text[1024];
    if (text_of(child(root, "Code"), text, sizeof text))
        snprintf(code, codelen, "%s", text);
    if (text_of(child(root, "Message"), text, sizeof text))
        snprintf(msg, msglen, "%s", text);
    xmlFreeDoc(doc);
    return true;
}
