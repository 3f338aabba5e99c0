/* Hash of bytes; see hash.h. */
#include "core/hash.h"

#include <string.h>

uint64_t sl_hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    const uint64_t m = 0x9e3779b97f4a7c15u;
    uint64_t h = 0x243f6a8885a308d3u ^ (n * m);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * m;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 32);
}
