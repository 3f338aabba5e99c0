/* Durable directory creation and syncing; see fs.h. */
#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

sl_err sl_fs_sync_dir(const char *dir, char *errbuf, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return sl_errbuf_set(errbuf, errlen, SL_ERR_IO, "could not sync \"%s\": %s", dir,
                             strerror(e));
    }
    close(fd);
    return SL_OK;
}

sl_err sl_fs_make_dirs(const char *dir, mode_t mode, char *errbuf, size_t errlen)
{
    char p[4096];
    size_t len = strlen(dir);
    if (len >= sizeof p)
        return sl_errbuf_set(errbuf, errlen, SL_ERR_CONFIG, "path \"%.64s...\" is too long", dir);
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, mode) == 0) {
            char *slash = strrchr(p, '/');
            if (slash && slash > p) {
                *slash = '\0';
                sl_err err = sl_fs_sync_dir(p, errbuf, errlen);
                *slash = '/';
                if (err)
                    return err;
            }
        } else if (errno != EEXIST) {
            int e = errno;
            return sl_errbuf_set(errbuf, errlen,
                                 e == EACCES || e == EPERM ? SL_ERR_CONFIG : SL_ERR_IO,
                                 "could not create \"%s\": %s", p, strerror(e));
        }
        p[i] = saved;
    }
    return SL_OK;
}
