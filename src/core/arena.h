/*
 * arena.h - a bump allocator for data that lives exactly as long as one
 * owner (a loaded model's graph: names, attribute lists, node arrays).
 * Allocation is a pointer bump; everything is released at once.
 */
#ifndef KILN_CORE_ARENA_H
#define KILN_CORE_ARENA_H

#include <stddef.h>

typedef struct kiln_arena_chunk kiln_arena_chunk_t;

typedef struct kiln_arena {
    kiln_arena_chunk_t *chunks; /* newest first */
    size_t total_bytes;         /* bytes handed out, for reports */
} kiln_arena_t;

/* Zeroed, 16-byte aligned memory; NULL (error set) when out of memory. */
void *kiln_arena_alloc(kiln_arena_t *arena, size_t size);
/* Same for count elements of size bytes; NULL on overflow too. */
void *kiln_arena_array(kiln_arena_t *arena, size_t count, size_t size);
/* A NUL-terminated copy of len bytes of s. */
char *kiln_arena_strndup(kiln_arena_t *arena, const char *s, size_t len);
void kiln_arena_release(kiln_arena_t *arena);

#endif
