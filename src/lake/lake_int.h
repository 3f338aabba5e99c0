/* Internals shared by the lake sink and compaction: writing one data file of the table
 * (its key, its upload and its Parquet writer) and describing it as a Delta add. */
#ifndef SL_LAKE_LAKE_INT_H
#define SL_LAKE_LAKE_INT_H

#include "lake/lake.h"

/* A data file being written. States: open (up and pw set) -> stored (the upload committed:
 * the object exists, up NULL) -> released. */
typedef struct sl__lake_file {
    char date[11];     /* the event_date partition value, YYYY-MM-DD */
    char rel_path[96]; /* event_date=DATE/part-UUIDv7[.codec].parquet */
    sl_storage_upload_t *up;
    bool stored;
    sl_pq_writer_t *pw;
} sl__lake_file;

/* Starts a new file of the partition `date` (YYYY-MM-DD) in st, writing Parquet with po
 * and the table's columns. On error f holds nothing to release. */
SL_MUST_CHECK sl_err sl__lake_file_open(sl_storage_t *st, const char *date,
                                        const sl_pq_writer_options *po, sl__lake_file *f,
                                        char *errbuf, size_t errlen);

/* Finishes the Parquet file and commits its upload (the object then exists: f->stored).
 * *add describes it (pointing into f, *pv and stats, which must outlive it); info, if not
 * NULL, receives the writer's summary (valid until the release). */
SL_MUST_CHECK sl_err sl__lake_file_finish(sl__lake_file *f, bool data_change, sl_buf *stats,
                                          sl_delta_kv *pv, sl_delta_add *add, uint64_t *rows,
                                          char *errbuf, size_t errlen);

/* Frees f; keep = false also removes the object from st (an upload not committed is
 * aborted, a stored one deleted: no commit will reference it). */
void sl__lake_file_release(sl_storage_t *st, sl__lake_file *f, bool keep);

/* Whether s is a date partition value this module writes (YYYY-MM-DD). */
bool sl__lake_is_date(const char *s);

#endif
