/* The file:// backend: a key is a path under the root directory. Writes go to a temporary
 * file beside the target (".sl-tmp-UUID", which listings skip) and become visible whole,
 * by rename() (replace) or link() (create only if absent, the Delta commit rule).
 *
 * Invariants: 1. a key's path never holds a partly written object; 2. a write that
 * returned SL_OK is durable (file and directory entry fsynced); 3. temporary files of a
 * crashed writer are never listed and never read as objects. */
#include "storage/storage_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/grow.h"
#include "core/uuid.h"

#define TMP_PREFIX     ".sl-tmp-"
#define MAX_LIST_DEPTH 64
#define MAX_LIST_KEYS  (16u * 1024 * 1024)

typedef struct file_store {
    sl_storage_t base;
    char *root;
} file_store;

typedef struct file_upload {
    sl_storage_upload_t base;
    sl_ostream_fd ofs;
    int fd;
    char *tmp;  /* temporary path; NULL once renamed */
    char *path; /* final path */
} file_upload;

static char *join(const char *root, const char *key)
{
    size_t a = strlen(root), b = strlen(key);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, root, a);
    p[a] = '/';
    memcpy(p + a + 1, key, b + 1);
    return p;
}

/* Creates every missing directory of path up to its last '/' (mkdir -p of the parent). */
static sl_err make_parents(char *path, char *errbuf, size_t errlen)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return SL_OK;
    *slash = '\0';
    sl_err err = sl_fs_make_dirs(path, 0777, errbuf, errlen);
    *slash = '/';
    return err;
}

/* Syncs the directory holding path, so an entry just created or renamed there lasts. */
static sl_err fsync_parent(const char *path, char *errbuf, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof dir)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE, "path \"%.64s...\" is too long",
                             path);
    if (n == 0) {
        memcpy(dir, slash == path ? "/" : ".", 2);
    } else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return sl_fs_sync_dir(dir, errbuf, errlen);
}

/* A fresh temporary path beside path: DIR/.sl-tmp-UUID. */
static char *tmp_path_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    char uuid[SL_UUID_STR_LEN + 1];
    sl_uuid_v7(uuid);
    size_t n = dlen + strlen(TMP_PREFIX) + strlen(uuid) + 1;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%.*s" TMP_PREFIX "%s", (int)dlen, path, uuid);
    return t;
}

static sl_err write_all(int fd, const char *p, size_t n, const char *what, char *errbuf,
                        size_t errlen)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not write \"%s\": %s", what,
                                 strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return SL_OK;
}

static sl_err file_get(sl_storage_t *st, const char *key, bool ranged, uint64_t offset,
                       uint64_t len, sl_buf *out, char *errbuf, size_t errlen)
{
    file_store *fs = (file_store *)st;
    sl_err err = SL_OK;
    size_t start = out->len;
    int fd = -1;
    char *path = join(fs->root, key);
    if (!path)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        err = sl_errbuf_set(errbuf, errlen, errno == ENOENT ? SL_ERR_NOT_FOUND : SL_ERR_IO,
                            "could not open \"%s\": %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOT_FOUND, "\"%s\" is not a file", path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (!ranged) {
        offset = 0;
        len = size;
    } else if (offset >= size) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID,
                            "range start %" PRIu64 " is past the end of \"%s\" (%" PRIu64 " bytes)",
                            offset, key, size);
        goto out;
    } else if (len > size - offset) {
        len = size - offset;
    }
    if (len > out->cap - out->len) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                            "\"%s\" needs %" PRIu64 " bytes, over the buffer's cap of %zu", key,
                            len, out->cap);
        goto out;
    }
    if ((err = sl_buf_reserve(out, (size_t)len))) {
        sl_errbuf_set(errbuf, errlen, err, "out of memory reading \"%s\"", key);
        goto out;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, out->data + start + done, (size_t)len - done, (off_t)(offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not read \"%s\": %s", path,
                                r < 0 ? strerror(errno) : "file shrank while read");
            goto out;
        }
        done += (size_t)r;
    }
    out->len = start + done;
    out->data[out->len] = '\0';
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return err;
}

static sl_err file_put(sl_storage_t *st, const char *key, const void *data, size_t len,
                       bool if_absent, char *errbuf, size_t errlen)
{
    file_store *fs = (file_store *)st;
    sl_err err = SL_OK;
    int fd = -1;
    char *tmp = NULL;
    char *path = join(fs->root, key);
    if (!path || !(tmp = tmp_path_for(path))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = make_parents(path, errbuf, errlen)))
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not create \"%s\": %s", tmp,
                            strerror(errno));
        goto out;
    }
    if ((err = write_all(fd, data, len, tmp, errbuf, errlen)))
        goto out;
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not sync \"%s\": %s", tmp,
                            strerror(errno));
        goto out;
    }
    fd = -1;
    if (if_absent) {
        /* link() never replaces: of racing writers exactly one creates the name. */
        if (link(tmp, path) != 0) {
            err = sl_errbuf_set(errbuf, errlen, errno == EEXIST ? SL_ERR_EXISTS : SL_ERR_IO,
                                "could not create \"%s\": %s", path, strerror(errno));
            goto out;
        }
    } else if (rename(tmp, path) != 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not rename \"%s\" to \"%s\": %s", tmp,
                            path, strerror(errno));
        goto out;
    } else {
        free(tmp);
        tmp = NULL;
    }
    err = fsync_parent(path, errbuf, errlen);
out:
    if (fd >= 0)
        close(fd);
    if (tmp)
        unlink(tmp);
    free(tmp);
    free(path);
    return err;
}

static sl_err file_head(sl_storage_t *st, const char *key, sl_storage_info *info, char *errbuf,
                        size_t errlen)
{
    file_store *fs = (file_store *)st;
    char *path = join(fs->root, key);
    if (!path)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    struct stat sb;
    sl_err err = SL_OK;
    if (stat(path, &sb) != 0)
        err = sl_errbuf_set(errbuf, errlen, errno == ENOENT ? SL_ERR_NOT_FOUND : SL_ERR_IO,
                            "could not stat \"%s\": %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOT_FOUND, "\"%s\" is not a file", path);
    else {
        info->size = (uint64_t)sb.st_size;
        info->mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    }
    free(path);
    return err;
}

static sl_err file_del(sl_storage_t *st, const char *key, char *errbuf, size_t errlen)
{
    file_store *fs = (file_store *)st;
    char *path = join(fs->root, key);
    if (!path)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    sl_err err = SL_OK;
    if (unlink(path) != 0 && errno != ENOENT)
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not delete \"%s\": %s", path,
                            strerror(errno));
    free(path);
    return err;
}

/* ---- listing: walk the directories a prefix can reach, then sort ---- */

typedef struct list_acc {
    sl_storage_entry *v;
    size_t n, alloc;
    const char *prefix;
    const char *start_after;
    bool temporary; /* list only the temporary files (which are otherwise skipped) */
} list_acc;

static sl_err acc_add(list_acc *acc, const char *key, const struct stat *sb)
{
    if (acc->n == acc->alloc) {
        if (acc->n >= MAX_LIST_KEYS)
            return SL_ERR_TOO_LARGE;
        sl_storage_entry *nv = sl_grow(acc->v, acc->n, &acc->alloc, 64, sizeof *nv);
        if (!nv)
            return SL_ERR_NOMEM;
        acc->v = nv;
    }
    char *k = strdup(key);
    if (!k)
        return SL_ERR_NOMEM;
    acc->v[acc->n++] = (sl_storage_entry){
        .key = k,
        .size = (uint64_t)sb->st_size,
        .mtime_ms = (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000,
    };
    return SL_OK;
}

/* Walks root/rel (rel "" or ending in '/'), adding regular files whose key matches. */
static sl_err walk(const char *root, char *rel, size_t rel_len, int depth, list_acc *acc,
                   char *errbuf, size_t errlen)
{
    if (depth > MAX_LIST_DEPTH)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE,
                             "directories under \"%s\" nest deeper than %d", root, MAX_LIST_DEPTH);
    char dirpath[4096];
    if (snprintf(dirpath, sizeof dirpath, "%s/%s", root, rel) >= (int)sizeof dirpath)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_TOO_LARGE, "path under \"%s\" is too long",
                             root);
    DIR *d = opendir(dirpath);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return SL_OK;
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not open directory \"%s\": %s",
                             dirpath, strerror(errno));
    }
    sl_err err = SL_OK;
    size_t plen = strlen(acc->prefix);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        bool tmp = strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || (tmp && !acc->temporary))
            continue;
        size_t nlen = strlen(name);
        if (rel_len + nlen + 2 > SL_STORAGE_MAX_KEY + 1)
            continue; /* no key could name it */
        memcpy(rel + rel_len, name, nlen + 1);
        size_t klen = rel_len + nlen;
        /* Only descend or keep where the prefix and this name agree so far. */
        size_t cmp = klen < plen ? klen : plen;
        if (memcmp(rel, acc->prefix, cmp) != 0)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), name, &sb, 0) != 0)
            continue; /* deleted since readdir */
        if (S_ISDIR(sb.st_mode)) {
            rel[klen] = '/';
            rel[klen + 1] = '\0';
            err = walk(root, rel, klen + 1, depth + 1, acc, errbuf, errlen);
        } else if (S_ISREG(sb.st_mode) && klen >= plen && strcmp(rel, acc->start_after) > 0 &&
                   tmp == acc->temporary) {
            err = acc_add(acc, rel, &sb);
            if (err)
                sl_errbuf_set(errbuf, errlen, err, "could not list \"%s\": %s", root,
                              err == SL_ERR_TOO_LARGE ? "too many keys" : "out of memory");
        }
        rel[rel_len] = '\0';
        if (err)
            break;
    }
    closedir(d);
    return err;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_storage_entry *)a)->key, ((const sl_storage_entry *)b)->key);
}

static sl_err list_files(sl_storage_t *st, const char *prefix, const char *start_after,
                         bool temporary, sl_storage_list_cb cb, void *opaque, char *errbuf,
                         size_t errlen)
{
    file_store *fs = (file_store *)st;
    list_acc acc = {.prefix = prefix, .start_after = start_after, .temporary = temporary};
    char rel[SL_STORAGE_MAX_KEY + 2];
    /* Start in the deepest directory the prefix names whole ("a/b/c" starts in "a/b/"). */
    const char *slash = strrchr(prefix, '/');
    size_t rel_len = slash ? (size_t)(slash - prefix) + 1 : 0;
    memcpy(rel, prefix, rel_len);
    rel[rel_len] = '\0';
    sl_err err = walk(fs->root, rel, rel_len, 0, &acc, errbuf, errlen);
    if (!err && acc.n > 0) {
        qsort(acc.v, acc.n, sizeof *acc.v, entry_cmp);
        for (size_t i = 0; i < acc.n && !err; i++)
            err = cb(opaque, &acc.v[i]);
    }
    for (size_t i = 0; i < acc.n; i++)
        free((char *)acc.v[i].key);
    free(acc.v);
    return err;
}

static sl_err file_list(sl_storage_t *st, const char *prefix, const char *start_after,
                        sl_storage_list_cb cb, void *opaque, char *errbuf, size_t errlen)
{
    return list_files(st, prefix, start_after, false, cb, opaque, errbuf, errlen);
}

static sl_err file_list_temporary(sl_storage_t *st, const char *prefix, sl_storage_list_cb cb,
                                  void *opaque, char *errbuf, size_t errlen)
{
    return list_files(st, prefix, "", true, cb, opaque, errbuf, errlen);
}

/* ---- upload streams: a temporary file renamed at commit ---- */

static sl_err upload_write(sl_ostream *os, const void *p, size_t n)
{
    file_upload *fu = (file_upload *)os;
    sl_err err = fu->ofs.os.write(&fu->ofs.os, p, n);
    if (err)
        memcpy(os->errbuf, fu->ofs.os.errbuf, sizeof os->errbuf);
    else
        os->written += n;
    return err;
}

static sl_err upload_flush(sl_ostream *os)
{
    file_upload *fu = (file_upload *)os;
    sl_err err = fu->ofs.os.flush(&fu->ofs.os);
    if (err)
        memcpy(os->errbuf, fu->ofs.os.errbuf, sizeof os->errbuf);
    return err;
}

static void file_upload_free(sl_storage_upload_t *up)
{
    file_upload *fu = (file_upload *)up;
    sl_ostream_fd_cleanup(&fu->ofs);
    if (fu->fd >= 0)
        close(fu->fd);
    if (fu->tmp)
        unlink(fu->tmp);
    free(fu->tmp);
    free(fu->path);
    free(up->key);
    free(fu);
}

static sl_err file_upload_new(sl_storage_t *st, const char *key, sl_storage_upload_t **up,
                              char *errbuf, size_t errlen)
{
    file_store *fs = (file_store *)st;
    sl_err err = SL_OK;
    file_upload *fu = calloc(1, sizeof *fu);
    if (!fu)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    fu->fd = -1;
    fu->base.st = st;
    fu->base.os.write = upload_write;
    fu->base.os.flush = upload_flush;
    if (!(fu->base.key = strdup(key)) || !(fu->path = join(fs->root, key)) ||
        !(fu->tmp = tmp_path_for(fu->path))) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((err = make_parents(fu->path, errbuf, errlen)))
        goto out;
    fu->fd = open(fu->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fu->fd < 0) {
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not create \"%s\": %s", fu->tmp,
                            strerror(errno));
        free(fu->tmp);
        fu->tmp = NULL;
        goto out;
    }
    if ((err = sl_ostream_fd_init(&fu->ofs, fu->fd))) {
        sl_errbuf_set(errbuf, errlen, err, "out of memory");
        goto out;
    }
    *up = &fu->base;
out:
    if (err)
        file_upload_free(&fu->base);
    return err;
}

static sl_err file_upload_commit(sl_storage_upload_t *up, char *errbuf, size_t errlen)
{
    file_upload *fu = (file_upload *)up;
    if (!fu->tmp)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_INVALID, "upload of \"%s\" already committed",
                             up->key);
    fu->ofs.sync = true;
    sl_err err = fu->ofs.os.flush(&fu->ofs.os);
    if (err)
        return sl_errbuf_set(errbuf, errlen, err, "%s", fu->ofs.os.errbuf);
    int rc = close(fu->fd);
    fu->fd = -1;
    if (rc != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not close \"%s\": %s", fu->tmp,
                             strerror(errno));
    if (rename(fu->tmp, fu->path) != 0)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not rename \"%s\" to \"%s\": %s",
                             fu->tmp, fu->path, strerror(errno));
    free(fu->tmp);
    fu->tmp = NULL;
    return fsync_parent(fu->path, errbuf, errlen);
}

static void file_close(sl_storage_t *st)
{
    file_store *fs = (file_store *)st;
    free(fs->root);
    free(fs);
}

static const sl__storage_ops file_ops = {
    .get = file_get,
    .put = file_put,
    .head = file_head,
    .del = file_del,
    .list = file_list,
    .list_temporary = file_list_temporary,
    .upload_new = file_upload_new,
    .upload_commit = file_upload_commit,
    .upload_free = file_upload_free,
    .close = file_close,
};

sl_err sl__storage_file_open(const char *dir, sl_storage_t **st, char *errbuf, size_t errlen)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    file_store *fs = calloc(1, sizeof *fs);
    char *root = fs ? strndup(dir, n) : NULL;
    if (!root) {
        free(fs);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    }
    /* mkdir -p of the root itself: make_parents creates up to the last '/'. */
    char *probe = join(root, "x");
    sl_err err = probe ? make_parents(probe, errbuf, errlen)
                       : sl_errbuf_set(errbuf, errlen, SL_ERR_NOMEM, "out of memory");
    free(probe);
    struct stat sb;
    if (!err && (stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        err = sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "\"%s\" is not a directory", root);
    if (err) {
        free(root);
        free(fs);
        return err;
    }
    fs->base.ops = &file_ops;
    fs->root = root;
    *st = &fs->base;
    return SL_OK;
}
