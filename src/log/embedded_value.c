/* The stored values of the embedded log's partition DBs: a single record, or a batch of
 * records with consecutive offsets (one value per append unit and partition, written by
 * the writer for batch requests). Every reader of pN (consumers, retention, the counts at
 * open) goes through this decoder, which checks every length against the value's size:
 * the bytes come from disk and may be damaged. Layouts in log_int.h and
 * docs/internals/log.md ("On disk"). */
#include <string.h>

#include "log/log_int.h"

bool sl__log_value_open(const void *data, size_t size, sl__log_value_iter *it)
{
    const char *d = data;
    uint32_t key_len;
    if (size < SL__LOG_REC_HDR)
        return false;
    memcpy(&it->ts, d, sizeof it->ts);
    memcpy(&key_len, d + 8, sizeof key_len);
    it->end = d + size;
    if (key_len != SL__LOG_BATCH_TAG) {
        if (key_len > size - SL__LOG_REC_HDR)
            return false;
        it->next = d + SL__LOG_REC_HDR;
        it->key_len = key_len;
        it->count = 1;
        it->left = 1;
        it->batch = false;
        it->bytes = size - SL__LOG_REC_HDR;
        return true;
    }
    /* A batch holds at least two records (one would be stored as a single value), each
     * with its 8-byte header, so a count the size cannot hold is corrupt. */
    if (size < SL__LOG_BATCH_HDR)
        return false;
    memcpy(&it->count, d + 12, sizeof it->count);
    if (it->count < 2 || it->count > (size - SL__LOG_BATCH_HDR) / SL__LOG_BATCH_REC)
        return false;
    it->next = d + SL__LOG_BATCH_HDR;
    it->left = it->count;
    it->batch = true;
    it->bytes = size - SL__LOG_BATCH_HDR - (uint64_t)it->count * SL__LOG_BATCH_REC;
    return true;
}

bool sl__log_value_next(sl__log_value_iter *it, sl__log_value_rec *rec)
{
    if (!it->left)
        return false;
    size_t room = (size_t)(it->end - it->next);
    if (!it->batch) {
        rec->key_len = it->key_len;
        rec->key = it->next;
        rec->value = it->next + rec->key_len;
        rec->value_len = room - rec->key_len;
        it->next = it->end;
        it->left = 0;
        return true;
    }
    uint32_t vlen;
    if (room < SL__LOG_BATCH_REC)
        return false;
    memcpy(&rec->key_len, it->next, sizeof rec->key_len);
    memcpy(&vlen, it->next + 4, sizeof vlen);
    room -= SL__LOG_BATCH_REC;
    if (rec->key_len > room || vlen > room - rec->key_len)
        return false;
    /* The last record ends the value exactly: trailing bytes mean damage. */
    if (it->left == 1 && (size_t)rec->key_len + vlen != room)
        return false;
    rec->key = it->next + SL__LOG_BATCH_REC;
    rec->value = rec->key + rec->key_len;
    rec->value_len = vlen;
    it->next = rec->value + vlen;
    it->left--;
    return true;
}

size_t sl__log_value_batch_size(const wrec *const *recs, size_t n)
{
    size_t size = SL__LOG_BATCH_HDR;
    for (size_t i = 0; i < n; i++)
        size += SL__LOG_BATCH_REC + recs[i]->key_len + recs[i]->value_len;
    return size;
}

void sl__log_value_encode_batch(char *dst, int64_t ts, const wrec *const *recs, size_t n)
{
    uint32_t tag = SL__LOG_BATCH_TAG, count = (uint32_t)n;
    memcpy(dst, &ts, sizeof ts);
    memcpy(dst + 8, &tag, sizeof tag);
    memcpy(dst + 12, &count, sizeof count);
    dst += SL__LOG_BATCH_HDR;
    for (size_t i = 0; i < n; i++) {
        const wrec *r = recs[i];
        uint32_t vlen = (uint32_t)r->value_len;
        memcpy(dst, &r->key_len, sizeof r->key_len);
        memcpy(dst + 4, &vlen, sizeof vlen);
        dst += SL__LOG_BATCH_REC;
        if (r->key_len)
            memcpy(dst, r->key, r->key_len);
        dst += r->key_len;
        if (vlen)
            memcpy(dst, r->value, vlen);
        dst += vlen;
    }
}
