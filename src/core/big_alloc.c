/*
 * big_alloc.c - see big_alloc.h.  A buffer of at least one huge page
 * starts on a 2 MiB boundary and the whole huge pages inside it are
 * advised as such; its tail (less than a huge page) keeps small pages, so
 * no memory is spent on rounding up.
 */
#include "core/big_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

enum { HUGE_PAGE = 2 << 20 };

void *kiln_big_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes < HUGE_PAGE)
        return aligned_alloc(64, bytes ? bytes : 64);
    /* aligned_alloc wants a size that is a multiple of the alignment */
    void *p = aligned_alloc(HUGE_PAGE, (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1));
#ifdef MADV_HUGEPAGE
    if (p)
        madvise(p, bytes & ~(size_t)(HUGE_PAGE - 1), MADV_HUGEPAGE); /* advice: without THP nothing changes */
#endif
    return p;
}
