/* Directories made and synced so they survive a crash, for every module that writes files
 * (the embedded log, the Delta log, the file:// object store). */
#ifndef SL_CORE_FS_H
#define SL_CORE_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* mkdir -p: creates every missing directory of dir with mode, syncing the parent of each
 * one it creates so the new entry lasts. SL_ERR_CONFIG for a path too long or a permission
 * refused, SL_ERR_IO for any other failure, with the directory named in errbuf. */
SL_MUST_CHECK sl_err sl_fs_make_dirs(const char *dir, mode_t mode, char *errbuf, size_t errlen);

/* fsync of a directory, so the entries created or renamed in it last. */
SL_MUST_CHECK sl_err sl_fs_sync_dir(const char *dir, char *errbuf, size_t errlen);

#endif
