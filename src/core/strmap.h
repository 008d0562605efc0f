/*
 * strmap.h - a string -> int hash map (open addressing, linear probing).
 * Keys are borrowed: they must outlive the map.  Used to resolve value
 * names to indices while a graph is built.
 */
#ifndef KILN_CORE_STRMAP_H
#define KILN_CORE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kiln_strmap {
    const char **keys;
    int *vals;
    size_t cap, count;
} kiln_strmap_t;

/* Returns false when out of memory. */
bool kiln_strmap_put(kiln_strmap_t *m, const char *key, int val);
/* The value, or -1 when absent. */
int kiln_strmap_get(const kiln_strmap_t *m, const char *key);
void kiln_strmap_free(kiln_strmap_t *m);

#endif
