/* The embedded log's write-ahead log: records are made durable by appending CRC-framed
 * frames to pre-zeroed (or recycled) segment files with one fdatasync per group, and are
 * applied to LMDB later by the applier thread. This file encodes and decodes frames,
 * manages segments, writes groups, and at open replays what LMDB has not applied yet.
 *
 * Invariants (the numbers continue embedded.c's):
 *  8. Frames carry consecutive sequence numbers (lsn) across segments; a group's frames
 *     lie in one segment, and a new segment is started only after the previous one's
 *     frames are all fdatasync'd, so after any crash the durable frames are a prefix of
 *     the sequence: replay stops at the first frame that is missing, torn, or stale.
 *  9. A segment's bytes were written before it is used (zeroes, or an applied segment
 *     renamed, with its directory entry fsync'd), so an fdatasync after a group flushes
 *     data only, never block allocation or the file size.
 * 10. Recovery cuts the log at its end: the rest of the last segment is zeroed and later
 *     segments are removed before any new frame is written, so a stale frame that happens
 *     to carry the next sequence number can never be read after the new frames.
 * 11. A segment is reused or removed only when it lies wholly before meta "wal", i.e. its
 *     frames are in LMDB durably (applied_seq). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/diag.h"
#include "core/grow.h"
#include "core/time.h"
#include "log/log_int.h"

#define SEG_NAME_LEN   21 /* "wal-" + 16 hex digits + NUL */
#define ZERO_CHUNK     ((size_t)1 << 20)
#define SPARE_SEGMENTS 2 /* applied segments kept for reuse */

/* ---- frames ---- */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* CRC-32 of a frame after its CRC field; zlib takes at most UINT_MAX bytes per call. */
static uint32_t frame_crc(const unsigned char *hdr, const char *key, size_t kl, const char *val,
                          size_t vl)
{
    uLong c = crc32(0L, hdr + 4, SL__LOG_WAL_HDR - 4);
    if (kl)
        c = crc32(c, (const Bytef *)key, (uInt)kl);
    if (vl)
        c = crc32(c, (const Bytef *)val, (uInt)vl);
    return (uint32_t)c;
}

size_t sl__log_wal_encode(unsigned char *dst, const sl__log_wal_frame *f)
{
    put32(dst + 4, f->value_len);
    put32(dst + 8, f->key_len);
    put32(dst + 12, f->partition);
    put64(dst + 16, f->lsn);
    put64(dst + 24, f->offset);
    put64(dst + 32, (uint64_t)f->ts);
    if (f->key_len)
        memcpy(dst + SL__LOG_WAL_HDR, f->key, f->key_len);
    if (f->value_len)
        memcpy(dst + SL__LOG_WAL_HDR + f->key_len, f->value, f->value_len);
    put32(dst, frame_crc(dst, (const char *)dst + SL__LOG_WAL_HDR, f->key_len,
                         (const char *)dst + SL__LOG_WAL_HDR + f->key_len, f->value_len));
    return SL__LOG_WAL_HDR + (size_t)f->key_len + f->value_len;
}

size_t sl__log_wal_decode(const unsigned char *buf, size_t len, uint64_t lsn,
                          sl__log_wal_frame *out)
{
    if (len < SL__LOG_WAL_HDR)
        return 0;
    sl__log_wal_frame f = {
        .value_len = get32(buf + 4),
        .key_len = get32(buf + 8),
        .partition = get32(buf + 12),
        .lsn = get64(buf + 16),
        .offset = get64(buf + 24),
        .ts = (int64_t)get64(buf + 32),
    };
    /* The sequence number first: a stale frame from an earlier use of the segment is the
     * common end of the log and needs no CRC. */
    if (f.lsn != lsn)
        return 0;
    uint64_t body = (uint64_t)f.key_len + f.value_len;
    if (body > len - SL__LOG_WAL_HDR)
        return 0;
    f.key = (const char *)buf + SL__LOG_WAL_HDR;
    f.value = f.key + f.key_len;
    if (frame_crc(buf, f.key, f.key_len, f.value, f.value_len) != get32(buf))
        return 0;
    *out = f;
    return SL__LOG_WAL_HDR + (size_t)body;
}

/* ---- segments ---- */

static void seg_name(char out[SEG_NAME_LEN], uint64_t seq)
{
    snprintf(out, SEG_NAME_LEN, "wal-%016" PRIx64, seq);
}

static bool parse_seg_name(const char *name, uint64_t *seq)
{
    if (strncmp(name, "wal-", 4) != 0 || strlen(name) != SEG_NAME_LEN - 1)
        return false;
    uint64_t v = 0;
    for (const char *p = name + 4; *p; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return true;
}

static bool write_all(int fd, const void *buf, size_t len, uint64_t at)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
        at += (uint64_t)n;
    }
    return true;
}

/* Writes zeroes over [from, to) of fd. */
static bool zero_range(int fd, uint64_t from, uint64_t to)
{
    static const unsigned char zeroes[64 * 1024];
    while (from < to) {
        size_t n = to - from < sizeof zeroes ? (size_t)(to - from) : sizeof zeroes;
        if (!write_all(fd, zeroes, n, from))
            return false;
        from += n;
    }
    return true;
}

static int open_seg(const sl__log_wal *w, uint64_t seq, int flags)
{
    char name[SEG_NAME_LEN];
    seg_name(name, seq);
    return openat(w->dir_fd, name, flags | O_CLOEXEC, 0600);
}

static void unlink_seg(const sl__log_wal *w, uint64_t seq)
{
    char name[SEG_NAME_LEN];
    seg_name(name, seq);
    if (unlinkat(w->dir_fd, name, 0) != 0 && errno != ENOENT)
        sl_diag(SL_DIAG_WARN, "could not remove a write-ahead log segment",
                "segment=\"%s\" error=\"%s\"", name, strerror(errno));
}

/* Makes segment seq (at least `need` bytes) the current one: an applied segment renamed,
 * or a new file of zeroes; either way durable in the directory before use (invariant 9).
 * @thread writer */
static sl_err start_segment(emb_log *lg, uint64_t seq, uint64_t need, char *detail, size_t dlen)
{
    sl__log_wal *w = &lg->wal;
    uint64_t applied = atomic_load(&lg->applied_seq);
    uint64_t size = need > w->seg_bytes ? need : w->seg_bytes;
    int fd = -1;
    char name[SEG_NAME_LEN], old[SEG_NAME_LEN];
    seg_name(name, seq);
    while (w->oldest < applied && w->oldest < seq) {
        uint64_t victim = w->oldest;
        if (fd >= 0) {
            /* One is reused already: keep a few spares, remove the rest. */
            if (applied - victim <= SPARE_SEGMENTS)
                break;
            unlink_seg(w, victim);
            w->oldest++;
            continue;
        }
        w->oldest++;
        seg_name(old, victim);
        int ofd = openat(w->dir_fd, old, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (ofd >= 0 && fstat(ofd, &st) == 0 && (uint64_t)st.st_size >= size &&
            renameat(w->dir_fd, old, w->dir_fd, name) == 0) {
            fd = ofd;
            size = (uint64_t)st.st_size;
        } else {
            if (ofd >= 0)
                close(ofd);
            unlink_seg(w, victim);
        }
    }
    if (fd < 0) {
        fd = openat(w->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || !zero_range(fd, 0, size) || fsync(fd) != 0)
            goto fail;
    }
    if (fsync(w->dir_fd) != 0)
        goto fail;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    w->size = size;
    w->at.seq = seq;
    w->at.pos = 0;
    return SL_OK;
fail:
    snprintf(detail, dlen, "could not write log \"%s\": could not prepare %s: %s", lg->le->dir,
             name, strerror(errno));
    if (fd >= 0)
        close(fd);
    return SL_ERR_IO;
}

/* Tells readers in other processes how far the WAL acknowledged: the next lsn, in
 * DIR/acked.lsn (8 bytes, little-endian; not fsync'd: it is coordination between live
 * processes, and recovery rewrites it). */
static void publish_acked(const sl__log_wal *w)
{
    unsigned char b[8];
    put64(b, w->at.lsn);
    if (w->acked_fd >= 0 && !write_all(w->acked_fd, b, sizeof b, 0))
        sl_diag(SL_DIAG_WARN, "could not write acked.lsn", "error=\"%s\"", strerror(errno));
}

bool sl__log_wal_read_acked(const char *dir, uint64_t *lsn)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/" SL__LOG_ACKED_FILE, dir) >= (int)sizeof path)
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    unsigned char b[8];
    bool ok = pread(fd, b, sizeof b, 0) == (ssize_t)sizeof b;
    close(fd);
    if (ok)
        *lsn = get64(b);
    return ok;
}

sl_err sl__log_wal_applied_lsn(sl__log_env *le, uint64_t *lsn)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(le->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return sl__log_mdb_err(rc);
    MDB_val k = {sizeof SL__LOG_META_WAL - 1, SL__LOG_META_WAL}, v;
    rc = mdb_get(txn, le->meta, &k, &v);
    *lsn = 1; /* nothing applied yet */
    if (rc == 0 && v.mv_size == sizeof(walpos)) {
        walpos at;
        memcpy(&at, v.mv_data, sizeof at);
        *lsn = at.lsn;
    }
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? SL_OK : sl__log_mdb_err(rc);
}

void sl__log_wal_close(sl__log_wal *w)
{
    if (w->acked_fd >= 0)
        close(w->acked_fd);
    w->acked_fd = -1;
    if (w->fd >= 0)
        close(w->fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    w->fd = w->dir_fd = -1;
    free(w->buf);
    w->buf = NULL;
    w->cap = 0;
}

/* ---- writing a group ---- */

sl_err sl__log_wal_write(emb_log *lg, wunit *units, char *detail, size_t dlen)
{
    sl__log_wal *w = &lg->wal;
    uint64_t total = 0;
    for (wunit *u = units; u; u = u->next)
        for (size_t i = 0; i < u->n; i++)
            total += SL__LOG_WAL_HDR + (uint64_t)u->recs[i].key_len + u->recs[i].value_len;
    if (total > w->cap) {
        size_t cap = w->cap ? w->cap : 64 * 1024;
        while (cap < total)
            cap *= 2;
        unsigned char *b = realloc(w->buf, cap);
        if (!b) {
            snprintf(detail, dlen, "could not write log \"%s\": out of memory", lg->le->dir);
            return SL_ERR_NOMEM;
        }
        w->buf = b;
        w->cap = cap;
    }
    if (w->fd < 0 || w->at.pos + total > w->size) {
        sl_err err = start_segment(lg, w->fd < 0 ? w->at.seq : w->at.seq + 1, total, detail, dlen);
        if (err)
            return err;
    }

    uint64_t lsn = w->at.lsn;
    size_t at = 0;
    for (wunit *u = units; u; u = u->next) {
        for (size_t i = 0; i < u->n; i++) {
            const wrec *r = &u->recs[i];
            sl__log_wal_frame f = {.lsn = lsn++,
                                   .offset = r->off,
                                   .ts = r->ts,
                                   .partition = r->part,
                                   .key_len = r->key_len,
                                   .value_len = (uint32_t)r->value_len,
                                   .key = r->key,
                                   .value = r->value};
            at += sl__log_wal_encode(w->buf + at, &f);
        }
        u->after = (walpos){w->at.seq, w->at.pos + at, lsn};
    }
    if (write_all(w->fd, w->buf, at, w->at.pos) && fdatasync(w->fd) == 0) {
        w->at.pos += at;
        w->at.lsn = lsn;
        publish_acked(w);
        return SL_OK;
    }
    int e = errno;
    /* Nothing of the group counts: overwrite what may have reached the file so a replay
     * never finds it (best effort: the disk is failing). */
    if (zero_range(w->fd, w->at.pos, w->at.pos + at))
        (void)fdatasync(w->fd);
    snprintf(detail, dlen, "could not write log \"%s\": %s", lg->le->dir, strerror(e));
    return SL_ERR_IO;
}

/* ---- recovery ---- */

static sl_err read_meta_pos(emb_log *lg, walpos *out, char *errbuf, size_t errlen)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(lg->le->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        MDB_val k = {sizeof SL__LOG_META_WAL - 1, SL__LOG_META_WAL}, v;
        rc = mdb_get(txn, lg->le->meta, &k, &v);
        if (rc == 0 && v.mv_size == sizeof *out)
            memcpy(out, v.mv_data, sizeof *out);
        else if (rc == 0)
            rc = MDB_CORRUPTED;
        mdb_txn_abort(txn);
    }
    if (rc == MDB_NOTFOUND)
        return SL_OK; /* a new log: the caller's default */
    if (rc)
        return sl_errbuf_set(errbuf, errlen, sl__log_mdb_err(rc),
                             "could not open log \"%s\": meta \"wal\": %s", lg->le->dir,
                             mdb_strerror(rc));
    return SL_OK;
}

/* Applies the frames collected in recs[0..n) as one unit ending at `after`. */
static sl_err replay_flush(emb_log *lg, wrec *recs, size_t *n, walpos after, char *errbuf,
                           size_t errlen)
{
    if (*n == 0)
        return SL_OK;
    wunit *u = malloc(sizeof *u + *n * sizeof *recs);
    if (!u)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                             lg->le->dir, "out of memory");
    *u = (wunit){.n = *n, .after = after};
    memcpy(u->recs, recs, *n * sizeof *recs);
    char detail[512];
    bool ok = sl__log_emb_apply(lg, u, false, detail, sizeof detail);
    free(u);
    *n = 0;
    if (!ok)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO,
                             "could not open log \"%s\": replaying its write-ahead log: %s",
                             lg->le->dir, detail);
    return SL_OK;
}

/* Replays segment seq from *at (whose lsn it expects), in transactions of at most
 * txn_budget bytes; leaves *at just past the last valid frame. *found: the segment
 * exists. */
static sl_err replay_segment(emb_log *lg, walpos *at, bool *found, char *errbuf, size_t errlen)
{
    sl__log_wal *w = &lg->wal;
    *found = false;
    int fd = open_seg(w, at->seq, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            return SL_OK;
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open log \"%s\": %s",
                             lg->le->dir, strerror(errno));
    }
    *found = true;
    struct stat st;
    sl_err err = SL_OK;
    unsigned char *map = NULL;
    wrec *recs = NULL;
    size_t n = 0, cap = 0, bytes = 0;
    if (fstat(fd, &st) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open log \"%s\": %s", lg->le->dir,
                            strerror(errno));
        goto out;
    }
    size_t len = (size_t)st.st_size;
    if (len == 0 || at->pos >= len)
        goto out;
    map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open log \"%s\": %s", lg->le->dir,
                            strerror(errno));
        goto out;
    }
    for (;;) {
        sl__log_wal_frame f;
        size_t fl = sl__log_wal_decode(map + at->pos, len - at->pos, at->lsn, &f);
        if (fl == 0)
            break;
        if (f.partition >= lg->le->partitions) {
            sl_diag(SL_DIAG_WARN,
                    "log write-ahead frame names an unknown partition; the log "
                    "ends before it",
                    "dir=\"%s\" segment=%" PRIu64 " position=%" PRIu64 " partition=%" PRIu32,
                    lg->le->dir, at->seq, at->pos, f.partition);
            break;
        }
        wrec *nr = sl_grow(recs, n, &cap, 1024, sizeof *nr);
        if (!nr) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "could not open log \"%s\": %s",
                                lg->le->dir, "out of memory");
            goto out;
        }
        recs = nr;
        recs[n++] = (wrec){.key = f.key,
                           .key_len = f.key_len,
                           .value = f.value,
                           .value_len = f.value_len,
                           .part = f.partition,
                           .off = f.offset,
                           .ts = f.ts};
        at->pos += fl;
        at->lsn++;
        bytes += fl;
        if (bytes >= lg->txn_budget) {
            err = replay_flush(lg, recs, &n, *at, errbuf, errlen);
            if (err)
                goto out;
            bytes = 0;
        }
    }
    err = replay_flush(lg, recs, &n, *at, errbuf, errlen);
out:
    free(recs);
    if (map)
        munmap(map, len);
    close(fd);
    return err;
}

/* The lowest and highest segment numbers in the directory; false if there is none. */
static bool list_segments(sl__log_wal *w, uint64_t *lo, uint64_t *hi)
{
    int fd = dup(w->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    bool any = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t s;
        if (!parse_seg_name(e->d_name, &s))
            continue;
        if (!any || s < *lo)
            *lo = s;
        if (!any || s > *hi)
            *hi = s;
        any = true;
    }
    closedir(d);
    return any;
}

sl_err sl__log_wal_recover(emb_log *lg, char *errbuf, size_t errlen)
{
    sl__log_wal *w = &lg->wal;
    const char *dir = lg->le->dir;
    w->fd = -1;
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_fd < 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open log \"%s\": %s", dir,
                             strerror(errno));
    uint64_t lo = 0, hi = 0;
    bool any = list_segments(w, &lo, &hi);
    walpos at = {.seq = any ? lo : 0, .pos = 0, .lsn = 1};
    sl_err err = read_meta_pos(lg, &at, errbuf, errlen);
    if (err)
        return err;
    /* Replay forward; a segment ends where its frames stop, and the log goes on in the
     * next segment only if that one starts with the next sequence number (invariant 8). */
    uint64_t replayed_from = at.lsn;
    for (;;) {
        bool found;
        err = replay_segment(lg, &at, &found, errbuf, errlen);
        if (err)
            return err;
        walpos next = {at.seq + 1, 0, at.lsn};
        int fd = any && next.seq <= hi ? open_seg(w, next.seq, O_RDONLY) : -1;
        if (fd < 0)
            break;
        unsigned char hdr[SL__LOG_WAL_HDR];
        ssize_t got = pread(fd, hdr, sizeof hdr, 0);
        bool goes_on = got == (ssize_t)sizeof hdr && get64(hdr + 16) == next.lsn;
        close(fd);
        if (!goes_on)
            break;
        at = next;
    }
    if (at.lsn != replayed_from)
        sl_diag(SL_DIAG_INFO, "log replayed its write-ahead log", "dir=\"%s\" frames=%" PRIu64, dir,
                at.lsn - replayed_from);

    /* Cut the log at its end (invariant 10). */
    if (any) {
        for (uint64_t s = hi; s > at.seq; s--)
            unlink_seg(w, s);
    }
    w->at = at;
    w->oldest = any && lo < at.seq ? lo : at.seq;
    w->fd = open_seg(w, at.seq, O_RDWR);
    if (w->fd >= 0) {
        struct stat st;
        if (fstat(w->fd, &st) != 0 || !zero_range(w->fd, at.pos, (uint64_t)st.st_size) ||
            fdatasync(w->fd) != 0 || fsync(w->dir_fd) != 0)
            return sl_errbuf_set(errbuf, errlen, SL_ERR_IO,
                                 "could not open log \"%s\": could not cut its write-ahead log: "
                                 "%s",
                                 dir, strerror(errno));
        w->size = (uint64_t)st.st_size;
    } else if (errno != ENOENT) {
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open log \"%s\": %s", dir,
                             strerror(errno));
    }
    atomic_store(&lg->applied_seq, at.seq);
    w->acked_fd = openat(w->dir_fd, SL__LOG_ACKED_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    publish_acked(w); /* everything up to here is applied */
    return SL_OK;
}
