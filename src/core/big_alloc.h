/*
 * big_alloc.h - allocation of large, long-lived buffers that are streamed
 * through on every run (packed weights, the activation arena): 64-byte
 * aligned, and backed by transparent huge pages where the kernel offers
 * them (MADV_HUGEPAGE; most distributions set THP to "madvise"), which
 * takes most of the TLB misses out of streaming a ResNet's 100 MB of
 * weights each run.  Free with free().
 */
#ifndef KILN_CORE_BIG_ALLOC_H
#define KILN_CORE_BIG_ALLOC_H

#include <stddef.h>

/* bytes rounded up to 64; NULL when out of memory. */
void *kiln_big_alloc(size_t bytes);

#endif
