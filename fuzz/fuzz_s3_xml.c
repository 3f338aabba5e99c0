/* libFuzzer target for the S3 XML answers (src/storage/xml.c): any bytes go in as each
 * kind of answer, and what comes out must hold the parser's promises: a listing (of objects
 * or of unfinished uploads) within its bounds with non-empty keys of at most
 * SL_STORAGE_MAX_KEY bytes (and, for uploads, an upload id), a continuation token when
 * truncated, nothing allocated on refusal, messages NUL-terminated within their buffers.
 * abort() marks a broken invariant. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    char eb[256];

    for (int uploads = 0; uploads < 2; uploads++) {
        sl__s3_list_page page;
        sl_err err = uploads ? sl__storage_xml_uploads(xml, size, &page, eb, sizeof eb)
                             : sl__storage_xml_list(xml, size, &page, eb, sizeof eb);
        if (err == SL_OK) {
            CHECK(page.n <= SL__S3_MAX_PAGE_KEYS);
            for (size_t i = 0; i < page.n; i++) {
                size_t kl = strlen(page.objects[i].key);
                CHECK(kl > 0 && kl <= SL_STORAGE_MAX_KEY);
                const char *id = page.objects[i].upload_id;
                CHECK(uploads ? id && id[0] && strlen(id) <= SL__S3_MAX_TOKEN : id == NULL);
            }
            CHECK(!page.truncated || page.next_token);
            CHECK(!page.next_token || strlen(page.next_token) <= SL__S3_MAX_TOKEN);
            CHECK(uploads || page.next_upload_id == NULL);
            sl__storage_list_page_cleanup(&page);
        } else {
            CHECK(page.objects == NULL && page.n == 0 && page.next_token == NULL &&
                  page.next_upload_id == NULL);
            CHECK(memchr(eb, '\0', sizeof eb) != NULL);
        }
    }

    char *id = NULL;
    sl_err err = sl__storage_xml_upload_id(xml, size, &id, eb, sizeof eb);
    CHECK((err == SL_OK) == (id != NULL));
    if (id)
        CHECK(id[0] && strlen(id) <= SL__S3_MAX_TOKEN);
    free(id);

    err = sl__storage_xml_complete(xml, size, eb, sizeof eb);
    CHECK(err == SL_OK || err == SL_ERR_IO || err == SL_ERR_CORRUPT || err == SL_ERR_TOO_LARGE);

    char code[16], msg[32];
    if (sl__storage_xml_error(xml, size, code, sizeof code, msg, sizeof msg)) {
        CHECK(strlen(code) < sizeof code && strlen(msg) < sizeof msg);
    } else {
        CHECK(code[0] == '\0' && msg[0] == '\0');
    }
    return 0;
}
