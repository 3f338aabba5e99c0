/* Growable arrays: the one place that doubles an array's capacity when it is full. */
#ifndef SL_CORE_GROW_H
#define SL_CORE_GROW_H

#include <stddef.h>

/* Room for item n of items, an array of *cap items of item_size bytes: when n reaches *cap
 * the array is reallocated to twice the capacity (to `first` items when it has none) and
 * *cap updated. Returns the array, moved or not; NULL when out of memory or when the size
 * would overflow, and then items and *cap are as they were (the caller still owns items). */
void *sl_grow(void *items, size_t n, size_t *cap, size_t first, size_t item_size);

#endif
