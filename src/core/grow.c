/* Growable arrays; see grow.h. */
#include "core/grow.h"

#include <stdint.h>
#include <stdlib.h>

void *sl_grow(void *items, size_t n, size_t *cap, size_t first, size_t item_size)
{
    if (n < *cap)
        return items;
    if (*cap > SIZE_MAX / 2)
        return NULL;
    size_t want = *cap ? *cap * 2 : first;
    if (want == 0 || item_size == 0 || want > SIZE_MAX / item_size)
        return NULL;
    void *grown = realloc(items, want * item_size);
    if (grown)
        *cap = want;
    return grown;
}
