/* Unit tests of the S3 pieces that need no server: AWS Signature V4 against the examples
 * AWS publishes (S3 API reference and the SigV4 test suite), percent-encoding, and the
 * XML answer parser on good and hostile bodies. Run from test_storage.c's main. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"

int sl_test_s3_parse_run(void);

#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_AKID   "AKIAIOSFODNN7EXAMPLE"

/* Signs req and checks the signature at the end of the Authorization value. */
static void expect_signature(const sl__sigv4_request *req, const char *signed_headers,
                             const char *signature)
{
    sl_buf auth, creq, sts;
    sl_buf_init(&auth, 4096);
    sl_buf_init(&creq, 1 << 20);
    sl_buf_init(&sts, 4096);
    assert_int_equal(sl__storage_sigv4_sign(req, &auth, &creq, &sts), SL_OK);
    char want[1024];
    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, "
             "Signature=%s",
             req->access_key_id, req->amz_date, req->region, req->service, signed_headers,
             signature);
    if (strcmp(auth.data, want) != 0)
        fail_msg("canonical request:\n%s\nstring to sign:\n%s\ngot  %s\nwant %s", creq.data,
                 sts.data, auth.data, want);
    sl_buf_cleanup(&auth);
    sl_buf_cleanup(&creq);
    sl_buf_cleanup(&sts);
}

/* S3 API reference, "Example: GET Object" (the first 10 bytes of test.txt). */
static void sigv4_s3_get_object(void **state)
{
    sl__sigv4_header h[] = {
        {"range", "bytes=0-9"},
        {"host", "examplebucket.s3.amazonaws.com"},
        {"x-amz-date", "20130524T000000Z"},
        {"x-amz-content-sha256", EMPTY_SHA},
    };
    sl__sigv4_request req = {"GET",     "/test.txt",        "",          h,    4,
                             EMPTY_SHA, "20130524T000000Z", "us-east-1", "s3", S3_AKID,
                             S3_SECRET};
    expect_signature(&req, "host;range;x-amz-content-sha256;x-amz-date",
                     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    /* The documented string to sign, and the canonical request it hashes. */
    sl_buf auth, creq, sts;
    sl_buf_init(&auth, 4096);
    sl_buf_init(&creq, 4096);
    sl_buf_init(&sts, 4096);
    assert_int_equal(sl__storage_sigv4_sign(&req, &auth, &creq, &sts), SL_OK);
    assert_string_equal(sts.data,
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                        "20130524/us-east-1/s3/aws4_request\n"
                        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    assert_string_equal(creq.data, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
                                   "range:bytes=0-9\nx-amz-content-sha256:" EMPTY_SHA "\n"
                                   "x-amz-date:20130524T000000Z\n\n"
                                   "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA);
    sl_buf_cleanup(&auth);
    sl_buf_cleanup(&creq);
    sl_buf_cleanup(&sts);
}

/* S3 API reference, "Example: PUT Object" (a '$' in the key, a body hash, a date header). */
static void sigv4_s3_put_object(void **state)
{
    const char *body = "Welcome to Amazon S3.";
    char hash[65];
    sl__storage_sha256_hex(body, strlen(body), hash);
    assert_string_equal(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    sl_buf path;
    sl_buf_init(&path, 256);
    assert_int_equal(sl__storage_uri_encode(&path, "/test$file.text", true), SL_OK);
    assert_string_equal(path.data, "/test%24file.text");
    sl__sigv4_header h[] = {
        {"host", "examplebucket.s3.amazonaws.com"},
        {"date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-date", "20130524T000000Z"},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-content-sha256", hash},
    };
    sl__sigv4_request req = {"PUT",       path.data, "",      h,        5, hash, "20130524T000000Z",
                             "us-east-1", "s3",      S3_AKID, S3_SECRET};
    expect_signature(&req, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    sl_buf_cleanup(&path);
}

/* S3 API reference, "Example: GET Bucket Lifecycle" and "Example: Get Bucket (List
 * Objects)": sub-resource and sorted query parameters. */
static void sigv4_s3_bucket_queries(void **state)
{
    sl__sigv4_header h[] = {
        {"host", "examplebucket.s3.amazonaws.com"},
        {"x-amz-date", "20130524T000000Z"},
        {"x-amz-content-sha256", EMPTY_SHA},
    };
    sl__sigv4_request req = {"GET", "/",       "lifecycle=",       h,
                             3,     EMPTY_SHA, "20130524T000000Z", "us-east-1",
                             "s3",  S3_AKID,   S3_SECRET};
    expect_signature(&req, "host;x-amz-content-sha256;x-amz-date",
                     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    req.canonical_query = "max-keys=2&prefix=J";
    expect_signature(&req, "host;x-amz-content-sha256;x-amz-date",
                     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

/* The SigV4 test suite's get-vanilla (another service, no payload header), and a value
 * whose spaces the canonical form folds. */
static void sigv4_suite_vanilla(void **state)
{
    sl__sigv4_header h[] = {
        {"host", "example.amazonaws.com"},
        {"x-amz-date", "20150830T123600Z"},
    };
    sl__sigv4_request req = {"GET",
                             "/",
                             "",
                             h,
                             2,
                             EMPTY_SHA,
                             "20150830T123600Z",
                             "us-east-1",
                             "service",
                             "AKIDEXAMPLE",
                             "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
    expect_signature(&req, "host;x-amz-date",
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    /* Leading, trailing and repeated inner spaces do not change the canonical header. */
    sl__sigv4_header h2[] = {
        {"host", "  example.amazonaws.com "},
        {"x-amz-date", "20150830T123600Z"},
    };
    req.headers = h2;
    expect_signature(&req, "host;x-amz-date",
                     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void sigv4_refuses_bad_input(void **state)
{
    sl__sigv4_header h[17] = {{0}};
    for (int i = 0; i < 17; i++)
        h[i] = (sl__sigv4_header){"x-amz-meta-x", "v"};
    sl__sigv4_request req = {"GET",       "/",  "",  h,  17, EMPTY_SHA, "20150830T123600Z",
                             "us-east-1", "s3", "A", "S"};
    sl_buf auth;
    sl_buf_init(&auth, 4096);
    assert_int_equal(sl__storage_sigv4_sign(&req, &auth, NULL, NULL), SL_ERR_INVALID);
    req.n_headers = 1;
    req.amz_date = "2015";
    assert_int_equal(sl__storage_sigv4_sign(&req, &auth, NULL, NULL), SL_ERR_INVALID);
    sl_buf_cleanup(&auth);
}

static void uri_encoding(void **state)
{
    sl_buf b;
    sl_buf_init(&b, 256);
    assert_int_equal(sl__storage_uri_encode(&b, "a b+c/d~e_f.g-h%\xc3\xa9", true), SL_OK);
    assert_string_equal(b.data, "a%20b%2Bc/d~e_f.g-h%25%C3%A9");
    sl_buf_reset(&b);
    assert_int_equal(sl__storage_uri_encode(&b, "_delta_log/", false), SL_OK);
    assert_string_equal(b.data, "_delta_log%2F");
    sl_buf_cleanup(&b);
}

/* ---- XML ---- */

static const char LIST_PAGE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>t/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>t/a&amp;b.json</Key><LastModified>2024-01-15T10:30:00.000Z</LastModified>"
    "<ETag>&quot;x&quot;</ETag><Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>t/c</Key><LastModified>2024-01-15T10:30:01.500Z</LastModified>"
    "<Size>0</Size></Contents>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "</ListBucketResult>";

static void xml_list_page(void **state)
{
    sl__s3_list_page page;
    char eb[256];
    assert_int_equal(sl__storage_xml_list(LIST_PAGE, strlen(LIST_PAGE), &page, eb, sizeof eb),
                     SL_OK);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.objects[0].key, "t/a&b.json");
    assert_int_equal(page.objects[0].size, 1234);
    assert_int_equal(page.objects[0].mtime_ms, INT64_C(1705314600000));
    assert_string_equal(page.objects[1].key, "t/c");
    assert_int_equal(page.objects[1].mtime_ms, INT64_C(1705314601500));
    assert_true(page.truncated);
    assert_string_equal(page.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    sl__storage_list_page_cleanup(&page);

    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    assert_int_equal(sl__storage_xml_list(last, strlen(last), &page, eb, sizeof eb), SL_OK);
    assert_int_equal(page.n, 0);
    assert_false(page.truncated);
    assert_null(page.next_token);
    sl__storage_list_page_cleanup(&page);
}

static void expect_list_refused(const char *xml, size_t len, sl_err want, const char *needle)
{
    sl__s3_list_page page;
    char eb[256] = "";
    sl_err err = sl__storage_xml_list(xml, len, &page, eb, sizeof eb);
    if (err != want || !strstr(eb, needle))
        fail_msg("got %s \"%s\", want %s with \"%s\"", sl_strerror(err), eb, sl_strerror(want),
                 needle);
    assert_null(page.objects);
    assert_int_equal(page.n, 0);
}

static char *contents_entry(const char *key, const char *size, const char *mtime)
{
    size_t n = strlen(key) + strlen(size) + strlen(mtime) + 256;
    char *s = malloc(n);
    snprintf(s, n,
             "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>%s</Key>"
             "<Size>%s</Size><LastModified>%s</LastModified></Contents></ListBucketResult>",
             key, size, mtime);
    return s;
}

static void xml_hostile_bodies(void **state)
{
    const char *mt = "2024-01-15T10:30:00Z";
    /* Not XML, cut short, wrong root. */
    expect_list_refused("", 0, SL_ERR_CORRUPT, "not well-formed");
    expect_list_refused("<ListBucketResult><Contents>", 28, SL_ERR_CORRUPT, "not well-formed");
    expect_list_refused("<Error/>", 8, SL_ERR_CORRUPT, "root is <Error>");
    /* Entity expansion (billion laughs) and external entities: any DTD is refused. */
    const char *laughs =
        "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
        "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;\">]>"
        "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>&c;</Key>"
        "<Size>1</Size><LastModified>2024-01-15T10:30:00Z</LastModified></Contents>"
        "</ListBucketResult>";
    /* (libxml2's own amplification check may refuse it first: either way, refused.) */
    expect_list_refused(laughs, strlen(laughs), SL_ERR_CORRUPT, "s3 answer");
    const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM "
                      "\"file:///etc/passwd\">]><ListBucketResult><Contents><Key>&x;</Key>"
                      "</Contents></ListBucketResult>";
    expect_list_refused(xxe, strlen(xxe), SL_ERR_CORRUPT, "document type");
    /* Bad fields. */
    char *s;
    const char *bad_sizes[] = {"-1", "abc", "", "99999999999999999999999", "1 2"};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
        s = contents_entry("k", bad_sizes[i], mt);
        expect_list_refused(s, strlen(s), SL_ERR_CORRUPT, "bad size");
        free(s);
    }
    s = contents_entry("k", "1", "yesterday");
    expect_list_refused(s, strlen(s), SL_ERR_CORRUPT, "bad LastModified");
    free(s);
    s = contents_entry("", "1", mt);
    expect_list_refused(s, strlen(s), SL_ERR_CORRUPT, "no key");
    free(s);
    char longkey[SL_STORAGE_MAX_KEY + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    s = contents_entry(longkey, "1", mt);
    expect_list_refused(s, strlen(s), SL_ERR_CORRUPT, "no key or one over");
    free(s);
    const char *no_token = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
    expect_list_refused(no_token, strlen(no_token), SL_ERR_CORRUPT, "no continuation token");
    /* Too many entries, and a body over the size limit. */
    sl_buf b;
    sl_buf_init(&b, SL__S3_MAX_BODY + 1024);
    assert_int_equal(sl_buf_append_str(&b, "<ListBucketResult>"), SL_OK);
    for (unsigned i = 0; i <= SL__S3_MAX_PAGE_KEYS; i++)
        assert_int_equal(sl_buf_append_str(&b, "<Contents/>"), SL_OK);
    assert_int_equal(sl_buf_append_str(&b, "</ListBucketResult>"), SL_OK);
    expect_list_refused(b.data, b.len, SL_ERR_CORRUPT, "over the limit");
    sl_buf_reset(&b);
    assert_int_equal(sl_buf_append_str(&b, "<ListBucketResult><Name>"), SL_OK);
    while (b.len <= SL__S3_MAX_BODY)
        assert_int_equal(sl_buf_append_str(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), SL_OK);
    expect_list_refused(b.data, b.len, SL_ERR_TOO_LARGE, "over the limit");
    sl_buf_cleanup(&b);
}

/* ListMultipartUploads as AWS documents it: two uploads of one key, truncated. */
static const char UPLOADS_PAGE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
    "<NextKeyMarker>t/b.parquet</NextKeyMarker><NextUploadIdMarker>VXBsb2FkIDI</NextUploadIdMarker>"
    "<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
    "<Upload><Key>t/b.parquet</Key><UploadId>VXBsb2FkIDE</UploadId>"
    "<Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>"
    "<Initiated>2024-01-15T10:30:00.000Z</Initiated></Upload>"
    "<Upload><Key>t/b.parquet</Key><UploadId>VXBsb2FkIDI</UploadId>"
    "<Initiated>2024-01-15T11:30:00.000Z</Initiated></Upload>"
    "</ListMultipartUploadsResult>";

static void expect_uploads_refused(const char *xml, const char *needle)
{
    sl__s3_list_page page;
    char eb[256] = "";
    sl_err err = sl__storage_xml_uploads(xml, strlen(xml), &page, eb, sizeof eb);
    if (err != SL_ERR_CORRUPT || !strstr(eb, needle))
        fail_msg("got %s \"%s\", want corrupt with \"%s\"", sl_strerror(err), eb, needle);
    assert_null(page.objects);
    assert_null(page.next_token);
    assert_null(page.next_upload_id);
}

static void xml_uploads_page(void **state)
{
    sl__s3_list_page page;
    char eb[256];
    assert_int_equal(
        sl__storage_xml_uploads(UPLOADS_PAGE, strlen(UPLOADS_PAGE), &page, eb, sizeof eb), SL_OK);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.objects[0].key, "t/b.parquet");
    assert_string_equal(page.objects[0].upload_id, "VXBsb2FkIDE");
    assert_int_equal(page.objects[0].mtime_ms, INT64_C(1705314600000));
    assert_int_equal(page.objects[0].size, 0);
    assert_string_equal(page.objects[1].upload_id, "VXBsb2FkIDI");
    assert_int_equal(page.objects[1].mtime_ms, INT64_C(1705318200000));
    assert_true(page.truncated);
    assert_string_equal(page.next_token, "t/b.parquet");
    assert_string_equal(page.next_upload_id, "VXBsb2FkIDI");
    sl__storage_list_page_cleanup(&page);

    const char *none = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
                       "</ListMultipartUploadsResult>";
    assert_int_equal(sl__storage_xml_uploads(none, strlen(none), &page, eb, sizeof eb), SL_OK);
    assert_int_equal(page.n, 0);
    assert_false(page.truncated);
    sl__storage_list_page_cleanup(&page);

    /* An object listing is not an upload listing, and each field is checked. */
    expect_uploads_refused("<ListBucketResult/>", "root is <ListBucketResult>");
    expect_uploads_refused("<ListMultipartUploadsResult><Upload><Key>k</Key>"
                           "<Initiated>2024-01-15T10:30:00Z</Initiated></Upload>"
                           "</ListMultipartUploadsResult>",
                           "has no UploadId");
    expect_uploads_refused("<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u</UploadId>"
                           "<Initiated>soon</Initiated></Upload></ListMultipartUploadsResult>",
                           "bad Initiated");
    expect_uploads_refused("<ListMultipartUploadsResult><Upload><UploadId>u</UploadId>"
                           "</Upload></ListMultipartUploadsResult>",
                           "no key");
    expect_uploads_refused("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                           "</ListMultipartUploadsResult>",
                           "no continuation token");
}

static void xml_multipart_and_errors(void **state)
{
    char eb[256];
    char *id = NULL;
    const char *init = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult "
                       "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>"
                       "<Key>k</Key><UploadId>VXBsb2FkIElE</UploadId>"
                       "</InitiateMultipartUploadResult>";
    assert_int_equal(sl__storage_xml_upload_id(init, strlen(init), &id, eb, sizeof eb), SL_OK);
    assert_string_equal(id, "VXBsb2FkIElE");
    free(id);
    const char *noid = "<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>";
    assert_int_equal(sl__storage_xml_upload_id(noid, strlen(noid), &id, eb, sizeof eb),
                     SL_ERR_CORRUPT);
    assert_null(id);

    const char *done = "<CompleteMultipartUploadResult><Location>x</Location>"
                       "</CompleteMultipartUploadResult>";
    assert_int_equal(sl__storage_xml_complete(done, strlen(done), eb, sizeof eb), SL_OK);
    /* A 200 whose body is an Error: the upload did not complete. */
    const char *err200 = "<Error><Code>InternalError</Code><Message>We encountered an internal "
                         "error. Please try again.</Message></Error>";
    assert_int_equal(sl__storage_xml_complete(err200, strlen(err200), eb, sizeof eb), SL_ERR_IO);
    assert_non_null(strstr(eb, "InternalError: We encountered an internal error"));
    assert_int_equal(sl__storage_xml_complete("garbage", 7, eb, sizeof eb), SL_ERR_CORRUPT);

    char code[32], msg[64];
    const char *denied = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                         "<Message>Access Denied</Message><RequestId>1</RequestId></Error>";
    assert_true(sl__storage_xml_error(denied, strlen(denied), code, sizeof code, msg, sizeof msg));
    assert_string_equal(code, "AccessDenied");
    assert_string_equal(msg, "Access Denied");
    /* Long values are cut to the caller's buffers, never overrun them. */
    char longmsg[2048];
    snprintf(longmsg, sizeof longmsg,
             "<Error><Code>%0200d</Code><Message>%01500d</Message></Error>", 7, 9);
    assert_true(
        sl__storage_xml_error(longmsg, strlen(longmsg), code, sizeof code, msg, sizeof msg));
    assert_int_equal(strlen(code), sizeof code - 1);
    assert_int_equal(strlen(msg), 0); /* over the 1 KiB read bound: left out */
    assert_false(sl__storage_xml_error("<html>502</html>", 16, code, sizeof code, msg, sizeof msg));
    assert_string_equal(code, "");
}

int sl_test_s3_parse_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigv4_s3_get_object),     cmocka_unit_test(sigv4_s3_put_object),
        cmocka_unit_test(sigv4_s3_bucket_queries), cmocka_unit_test(sigv4_suite_vanilla),
        cmocka_unit_test(sigv4_refuses_bad_input), cmocka_unit_test(uri_encoding),
        cmocka_unit_test(xml_list_page),           cmocka_unit_test(xml_hostile_bodies),
        cmocka_unit_test(xml_uploads_page),        cmocka_unit_test(xml_multipart_and_errors),
    };
    return cmocka_run_group_tests_name("storage_s3_parse", tests, NULL, NULL);
}
