/* Tests on 8 bytes at once ("SIMD within a register"), for scanners that skip long runs
 * of bytes needing nothing and look closer only at a word that holds a byte of interest.
 * Each test is exact about whether some byte matches, not about which one. */
#ifndef SL_CORE_SWAR_H
#define SL_CORE_SWAR_H

#include <stdint.h>
#include <string.h>

#define SL_SWAR_ONES  UINT64_C(0x0101010101010101)
#define SL_SWAR_HIGHS UINT64_C(0x8080808080808080)

/* The 8 bytes at p (any alignment). */
static inline uint64_t sl_swar_load(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Whether some byte of w is below n (n at most 128). */
static inline uint64_t sl_swar_has_below(uint64_t w, unsigned char n)
{
    return (w - SL_SWAR_ONES * n) & ~w & SL_SWAR_HIGHS;
}

/* Whether some byte of w equals c. */
static inline uint64_t sl_swar_has_byte(uint64_t w, unsigned char c)
{
    return sl_swar_has_below(w ^ (SL_SWAR_ONES * c), 1);
}

#endif
