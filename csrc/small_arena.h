/* A faster home for CPython's small "arena" allocations (the frame data-stack chunks).
 *
 * CPython 3.11 allocates every greenlet's first frame data-stack chunk (16 KiB) through the arena
 * allocator, i.e. one mmap() when the greenlet starts and one munmap() when it ends: most of the
 * ~11 us a greenlet start costs (CORE-NOTES, pitfall 1). We route requests smaller than
 * SPLAY_ARENA_SMALL to malloc() instead, and leave pymalloc's big arenas to the original allocator.
 *
 * Telling the two apart on free: the original allocator returns page-aligned memory (mmap), ours
 * never does (we offset the malloc'd block by 16 or 32 bytes and keep the offset in the byte just
 * before the pointer). So memory allocated before installation is still freed by its own allocator.
 */
#ifndef SPLAY_SMALL_ARENA_H
#define SPLAY_SMALL_ARENA_H
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

#define SPLAY_ARENA_SMALL (128 * 1024)
#define SPLAY_PAGE_MASK ((uintptr_t)4095)

static PyObjectArenaAllocator splay_orig_arena;
static int splay_arena_installed = 0;

static void *splay_arena_alloc(void *ctx, size_t size) {
    if (size >= SPLAY_ARENA_SMALL)
        return splay_orig_arena.alloc(splay_orig_arena.ctx, size);
    unsigned char *p = (unsigned char *)malloc(size + 32);
    if (p == NULL)
        return NULL;
    unsigned char *r = p + 16;
    if (((uintptr_t)r & SPLAY_PAGE_MASK) == 0)
        r = p + 32;
    r[-1] = (unsigned char)(r - p);
    return r;
}

static void splay_arena_free(void *ctx, void *ptr, size_t size) {
    if (ptr == NULL)
        return;
    if (((uintptr_t)ptr & SPLAY_PAGE_MASK) == 0) {
        splay_orig_arena.free(splay_orig_arena.ctx, ptr, size);
        return;
    }
    unsigned char *r = (unsigned char *)ptr;
    free(r - r[-1]);
}

/* Install once per process; returns 1 if installed now, 0 if it already was. */
static int splay_install_small_arena(void) {
    if (splay_arena_installed)
        return 0;
    PyObject_GetArenaAllocator(&splay_orig_arena);
    PyObjectArenaAllocator mine = {NULL, splay_arena_alloc, splay_arena_free};
    PyObject_SetArenaAllocator(&mine);
    splay_arena_installed = 1;
    return 1;
}
#endif
