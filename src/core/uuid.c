/* UUIDv7 generation (RFC 9562 §5.7, counter method 1 of §6.2) and the canonical-form
 * check; see uuid.h. The ingest path makes one id per event without a client id, so ids
 * cost one atomic CAS and no system call: random bits come from a per-thread buffer that
 * getrandom() refills a kilobyte at a time. */
#include "core/uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/time.h"

/* The last id's 48-bit millisecond and 12-bit counter as one number, (ms << 12) | counter.
 * Adding 1 bumps the counter and, when it overflows, carries into the millisecond: exactly
 * the "advance the timestamp" rule of RFC 9562 §6.2, and it keeps ids strictly increasing
 * even when the wall clock steps back. */
static _Atomic uint64_t last_state;

#define RND_SIZE   1024
#define RND_PER_ID 10 /* 8 bytes for rand_b, 2 for the counter seed */

static _Thread_local struct {
    unsigned char buf[RND_SIZE];
    size_t pos;
    uint64_t fallback; /* splitmix64 state, used only if getrandom() is unavailable */
} rnd = {.pos = RND_SIZE};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A forked child starts with a copy of the parent's unused random bytes, which would give
 * both processes the same ids; the forking thread is the child's only thread, so emptying
 * its buffer is enough. */
static void drop_random_after_fork(void)
{
    rnd.pos = RND_SIZE;
}

static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, drop_random_after_fork);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void refill(void)
{
    size_t got = 0;
    while (got < RND_SIZE) {
        ssize_t n = getrandom(rnd.buf + got, RND_SIZE - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EINTR)
            break;
    }
    if (got < RND_SIZE) {
        /* No kernel randomness (a pre-3.17 kernel or a seccomp filter): sl_uuid_v7 cannot
         * fail, so fall back to a generator seeded from the clock, pid and stack address.
         * Uniqueness within the process still holds through the counter. */
        if (!rnd.fallback)
            rnd.fallback = (uint64_t)sl_time_mono_ns() ^ ((uint64_t)getpid() << 32) ^
                           (uint64_t)(uintptr_t)&got;
        for (size_t i = got; i < RND_SIZE; i += 8) {
            uint64_t v = splitmix64(&rnd.fallback);
            size_t n = RND_SIZE - i < 8 ? RND_SIZE - i : 8;
            memcpy(rnd.buf + i, &v, n);
        }
    }
    rnd.pos = 0;
}

void sl_uuid_v7(char out[SL_UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    pthread_once(&atfork_once, register_atfork);
    if (RND_SIZE - rnd.pos < RND_PER_ID)
        refill();
    const unsigned char *r = rnd.buf + rnd.pos;
    rnd.pos += RND_PER_ID;

    /* A new millisecond starts the counter at a random value below 2048, leaving at
     * least 2048 increments before it carries (RFC 9562 §6.2 guards against rollover). */
    uint64_t seed = ((uint64_t)r[8] << 8 | r[9]) & 0x7ff;
    uint64_t now_ms = (uint64_t)sl_time_now_us() / 1000;
    uint64_t old = atomic_load_explicit(&last_state, memory_order_relaxed);
    uint64_t next;
    do {
        next = now_ms > (old >> 12) ? (now_ms << 12 | seed) : old + 1;
    } while (!atomic_compare_exchange_weak_explicit(&last_state, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));

    uint64_t ms = next >> 12;
    unsigned counter = (unsigned)(next & 0xfff);
    unsigned char b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | counter >> 8); /* version 7 */
    b[7] = (unsigned char)counter;
    b[8] = (unsigned char)(0x80 | (r[0] & 0x3f)); /* variant 10 */
    memcpy(b + 9, r + 1, 7);

    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

bool sl_uuid_is_canonical(const char *s, size_t len)
{
    if (!s || len != SL_UUID_STR_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}
