/* Unit tests of the output streams (src/core/ostream.c): into a capped sl_buf, and onto a
 * file descriptor through the internal buffer; run from test_core.c's main through
 * sl_test_ostream_run(). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ostream.h"

int sl_test_ostream_run(void);

static void ostream_buf_cap(void **state)
{
    sl_buf b;
    sl_ostream_buf obs;
    sl_buf_init(&b, 10);
    sl_ostream_buf_init(&obs, &b);
    assert_int_equal(obs.os.write(&obs.os, "hello", 5), SL_OK);
    assert_int_equal(obs.os.write(&obs.os, "", 0), SL_OK);
    assert_int_equal(obs.os.written, 5);
    assert_int_equal(obs.os.write(&obs.os, "world!", 6), SL_ERR_TOO_LARGE);
    assert_non_null(strstr(obs.os.errbuf, "could not append 6 bytes"));
    assert_int_equal(obs.os.written, 5);
    assert_int_equal(obs.os.flush(&obs.os), SL_OK);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "hello", 5);
    sl_buf_cleanup(&b);
}

/* Writes of every size around the buffer size land in order, and flush makes them whole. */
static void ostream_fd_round_trip(void **state)
{
    char path[] = "/tmp/sluice-ostream-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    sl_ostream_fd ofs;
    assert_int_equal(sl_ostream_fd_init(&ofs, fd), SL_OK);
    size_t sizes[] = {
        1, 7, SL_OSTREAM_FD_BUFSZ - 3, 5, SL_OSTREAM_FD_BUFSZ, 2 * SL_OSTREAM_FD_BUFSZ + 1, 100};
    size_t total = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        total += sizes[k];
    unsigned char *want = malloc(total), *got = malloc(total + 1);
    for (size_t i = 0; i < total; i++)
        want[i] = (unsigned char)(i * 131 + i / 251);
    size_t at = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        assert_int_equal(ofs.os.write(&ofs.os, want + at, sizes[k]), SL_OK);
        at += sizes[k];
        assert_int_equal(ofs.os.written, at);
    }
    assert_int_equal(ofs.os.flush(&ofs.os), SL_OK);
    assert_int_equal(pread(fd, got, total + 1, 0), (ssize_t)total);
    assert_memory_equal(got, want, total);
    sl_ostream_fd_cleanup(&ofs);
    sl_ostream_fd_cleanup(&ofs); /* twice is harmless */
    close(fd);
    free(want);
    free(got);
}

static void ostream_fd_errors(void **state)
{
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    sl_ostream_fd ofs;
    char big[SL_OSTREAM_FD_BUFSZ + 1] = {0};
    assert_int_equal(sl_ostream_fd_init(&ofs, fd), SL_OK);
    assert_int_equal(ofs.os.write(&ofs.os, "abc", 3), SL_OK); /* buffered, not yet refused */
    assert_int_equal(ofs.os.write(&ofs.os, big, sizeof big), SL_ERR_IO);
    assert_non_null(strstr(ofs.os.errbuf, "could not write to fd"));
    assert_int_equal(ofs.os.flush(&ofs.os), SL_ERR_IO);
    sl_ostream_fd_cleanup(&ofs);
    close(fd);
}

int sl_test_ostream_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ostream_buf_cap),
        cmocka_unit_test(ostream_fd_round_trip),
        cmocka_unit_test(ostream_fd_errors),
    };
    return cmocka_run_group_tests_name("ostream", tests, NULL, NULL);
}
