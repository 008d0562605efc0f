/*
 * arena.c - chunked bump allocator (see arena.h).
 */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define ARENA_CHUNK_MIN (64 * 1024)

struct kiln_arena_chunk {
    kiln_arena_chunk_t *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *kiln_arena_alloc(kiln_arena_t *arena, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    kiln_arena_chunk_t *c = arena->chunks;
    if (!c || c->size - c->used < size) {
        size_t csize = size > ARENA_CHUNK_MIN ? size : ARENA_CHUNK_MIN;
        c = malloc(sizeof *c + csize);
        if (!c) {
            kiln_fail(KILN_ERR_NO_MEMORY, "out of memory (%zu bytes for the model graph)", csize);
            return NULL;
        }
        c->size = csize;
        c->used = 0;
        c->next = arena->chunks;
        arena->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    arena->total_bytes += size;
    memset(p, 0, size);
    return p;
}

void *kiln_arena_array(kiln_arena_t *arena, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / 2 / size) {
        kiln_fail(KILN_ERR_NO_MEMORY, "array of %zu elements is too large", count);
        return NULL;
    }
    return kiln_arena_alloc(arena, count * size);
}

char *kiln_arena_strndup(kiln_arena_t *arena, const char *s, size_t len)
{
    if (len > SIZE_MAX / 2) {
        kiln_fail(KILN_ERR_NO_MEMORY, "string too long");
        return NULL;
    }
    char *d = kiln_arena_alloc(arena, len + 1);
    if (d && len)
        memcpy(d, s, len);
    return d;
}

void kiln_arena_release(kiln_arena_t *arena)
{
    kiln_arena_chunk_t *c = arena->chunks;
    while (c) {
        kiln_arena_chunk_t *n = c->next;
        free(c);
        c = n;
    }
    arena->chunks = NULL;
    arena->total_bytes = 0;
}
