/* Times the three copies csrc/large_copy.h can make (glibc's memcpy, the forward vector loop and
 * the backward one) at controlled distances between source and destination modulo 4 KiB, to find
 * where 4 KiB aliasing slows each of them down (bench/RESULTS-codecs.md, "Session 8").
 *
 *   large_copy_distances SIZE SRC_OFFSET STEP [ROUNDS]
 *
 * For every distance d = 0, STEP, 2*STEP, ... < 4096, the destination is a 4 KiB multiple plus d
 * past the source (source and destination never overlap; both stay in the L2 cache), and each copy
 * of SIZE bytes is timed: the minimum over ROUNDS (default 25) batches of 20 copies, the three
 * kinds interleaved. SRC_OFFSET is the source's address modulo 4 KiB (13: a 64 KiB payload after
 * "d4:data65536:" at the start of a page). Prints one line per distance:
 *   <d> <memcpy ns> <forward ns> <backward ns> <path splay_large_copy takes: memcpy|forward|backward>
 *
 * Built by `python bench/test_codecs.py --copy-distances` with the system C compiler
 * (cc -O2 -I csrc); no binary is committed. Run it on a quiet machine: it measures wall time.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "large_copy.h"

#define COPIES 20

typedef void (*copy_fn)(char*, const char*, size_t);

static void with_memcpy(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* nanoseconds per copy of one batch */
static double batch(copy_fn copy, char* dst, const char* src, size_t n) {
    double start = now_ns();
    for (int i = 0; i < COPIES; i++) {
        copy(dst, src, n);
        __asm__ volatile("" : : "r"(dst) : "memory");   /* every copy is made */
    }
    return (now_ns() - start) / COPIES;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s SIZE SRC_OFFSET STEP [ROUNDS]\n", argv[0]);
        return 2;
    }
    size_t n = strtoul(argv[1], NULL, 10);
    size_t src_offset = strtoul(argv[2], NULL, 10) % 4096;
    size_t step = strtoul(argv[3], NULL, 10);
    int rounds = argc > 4 ? atoi(argv[4]) : 25;
    if (n < 64 || step == 0 || rounds < 1) {
        fprintf(stderr, "need SIZE >= 64, STEP >= 1 and ROUNDS >= 1\n");
        return 2;
    }
    if (!splay_loop_copy_supported()) {
        fprintf(stderr, "this CPU has no AVX2: the vector loops cannot run\n");
        return 1;
    }
    splay_large_copy_init();
    /* the source at src_offset in its page; the destination pages start after the source's end */
    size_t pages = (src_offset + n + 4095) / 4096;
    char* base = aligned_alloc(4096, (2 * pages + 2) * 4096);
    if (base == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(base, 1, (2 * pages + 2) * 4096);
    char* src = base + src_offset;
    for (size_t i = 0; i < n; i++)
        src[i] = (char)(i * 131 + 7);
    copy_fn copies[3] = {with_memcpy, splay_loop_copy, splay_loop_copy_backward};
    static const char* paths[3] = {"memcpy", "forward", "backward"};
    for (size_t d = 0; d < 4096; d += step) {
        char* dst = base + (pages + 1) * 4096 + src_offset + d;
        double best[3] = {1e30, 1e30, 1e30};
        for (int k = 0; k < 3; k++)
            batch(copies[k], dst, src, n);   /* warm the caches */
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < 3; k++) {
                double t = batch(copies[k], dst, src, n);
                if (t < best[k])
                    best[k] = t;
            }
        }
        if (memcmp(dst, src, n) != 0) {
            fprintf(stderr, "copy at distance %zu differs from its source\n", d);
            return 1;
        }
        printf("%zu %.1f %.1f %.1f %s\n", d, best[0], best[1], best[2],
               paths[splay_large_copy_path(dst, src, n)]);
    }
    free(base);
    return 0;
}
