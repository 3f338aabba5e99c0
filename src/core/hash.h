/* A fast non-cryptographic hash of bytes, for in-memory hash tables only (never stored:
 * it may change). */
#ifndef SL_CORE_HASH_H
#define SL_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A multiply-xorshift hash over 8-byte words (then a final mix): fast for short keys, and
 * spread well enough for power-of-two open-addressing tables. */
uint64_t sl_hash_bytes(const void *p, size_t n);

#endif
