/* Copies of large byte strings for splayc.benc (a bytes value written into an encoded document,
 * or read out of one into its own bytes object).
 *
 * Why not always memcpy: glibc 2.36 (Debian 12) copies from about 2 KiB up to the L2 cache size
 * with `rep movsb` on CPUs that have ERMS. On AMD Zen 4 (the project machine) that instruction is
 * slower than a loop of 32-byte loads and aligned stores whenever the source and the destination
 * differ in their alignment modulo 32 (by 2 to 40 %, about 10 % at most sizes), and about as fast
 * otherwise (measured, in cache: 64 KiB in 1.24 µs against 1.13 µs; 16 KiB in 200 ns against
 * 145-165 ns; 256 KiB in 4.9 µs against 4.5 µs; 1 MiB in 21.8 µs against 21.3 µs).
 * A byte string inside an encoded document almost never shares its source's alignment: its payload
 * starts after "<length>:", at an odd offset of a freshly allocated bytes object. Later glibc
 * releases stopped using rep movsb on AMD Zen 3/4 below the non-temporal threshold for the same
 * reason (glibc bug 30994); this file does the same for benc's large copies only.
 *
 * 4 KiB aliasing: the CPU first matches a load against earlier stores by the low 12 bits of their
 * addresses. When the destination lies a little past the source modulo 4 KiB, the loads of a
 * forward copy can match stores it made just before, still in flight, and wait for them; a copy
 * going down (splay_loop_copy_backward) only matches stores it has not made yet. Measured on this
 * machine (session 8, bench/large_copy_distances.c, 64 KiB in cache, every distance in steps of 8):
 * memcpy's rep movsb takes 18-35 µs instead of 1.13 at 8-24 bytes and 1.21-1.55 µs (a 32-byte
 * misalignment plus aliasing) elsewhere below 512; at distances that are multiples of 32 it is the
 * fastest copy (1.14-1.16 µs, the loops 1-2 % slower). Between two fixed buffers the forward loop
 * slowed down at 56-216 bytes (up to 1.43 µs; which distances moved from run to run), the backward
 * loop not there (it does above ~3,900 bytes, where it meets its own stores); in bench/
 * test_codecs.py's decode, where benc's copy lands 275 bytes past its source, the forward loop took
 * 1.46-2.20 µs in 10 of 11 processes and the backward one 1.31-1.32 µs in 7 of 11 (1.44-1.65 in
 * noisy runs). Over the misaligned distances below 512 the backward loop averaged 1.13-1.18 µs,
 * the forward one 1.13-1.22; at a few isolated distances (296, 344, 376) it was 4-17 % slower than
 * the forward loop in one or two of four runs, not in the last (worst 1.14 µs at any distance).
 *
 * So, on an x86-64 AMD CPU with ERMS and AVX2 (checked once, at import: splay_large_copy_init), a
 * copy of SPLAY_LOOP_COPY_MIN up to SPLAY_LOOP_COPY_MAX bytes whose two ends differ in alignment
 * modulo 32 goes through splay_loop_copy_backward when its destination is less than
 * SPLAY_ALIAS_WINDOW bytes past its source modulo 4 KiB, through splay_loop_copy otherwise; every
 * other copy, and every copy on other CPUs or compilers, is memcpy (splay_large_copy_path says
 * which). The bytes written are the same either way. Measure with
 * `python bench/test_codecs.py --copy-distances` (bench/large_copy_distances.c).
 *
 * Not handled: where the allocator puts a decoded bytes object (and so the distance) is up to it;
 * msgspec's copy meets the same effect, so the ratio of the two still moves from process to
 * process, though benc's own time no longer does. */
#ifndef SPLAY_LARGE_COPY_H
#define SPLAY_LARGE_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SPLAY_LOOP_COPY_MIN 4096               /* below: glibc's vector code, not rep movsb */
#define SPLAY_LOOP_COPY_MAX (1024 * 1024)      /* above: beyond L2, glibc leaves rep movsb too */
/* A misaligned copy whose destination is less than this many bytes past its source modulo 4 KiB
 * goes backwards (4 KiB aliasing, see above). */
#define SPLAY_ALIAS_WINDOW 512
/* splay_large_copy_path's answers */
#define SPLAY_COPY_MEMCPY 0
#define SPLAY_COPY_FORWARD 1
#define SPLAY_COPY_BACKWARD 2

#if defined(__x86_64__) && defined(__GNUC__)
#define SPLAY_LOOP_COPY_BUILT 1
#include <cpuid.h>
#include <immintrin.h>

static int splay_loop_copy_on = 0;

/* n >= 64 bytes from src to dst (not overlapping): the first and last 32 bytes by unaligned
 * stores, everything between by 32-byte loads and aligned stores, four at a time. */
__attribute__((target("avx2"))) static void splay_loop_copy(char* dst, const char* src, size_t n) {
    __m256i head = _mm256_loadu_si256((const __m256i*)src);
    __m256i tail = _mm256_loadu_si256((const __m256i*)(src + n - 32));
    char* last = dst + n - 32;
    size_t skip = 32 - ((uintptr_t)dst & 31);   /* 1..32: the first aligned store is past dst */
    char* p = dst + skip;
    const char* q = src + skip;
    while (p + 128 <= last) {
        __m256i a = _mm256_loadu_si256((const __m256i*)q);
        __m256i b = _mm256_loadu_si256((const __m256i*)(q + 32));
        __m256i c = _mm256_loadu_si256((const __m256i*)(q + 64));
        __m256i d = _mm256_loadu_si256((const __m256i*)(q + 96));
        _mm256_store_si256((__m256i*)p, a);
        _mm256_store_si256((__m256i*)(p + 32), b);
        _mm256_store_si256((__m256i*)(p + 64), c);
        _mm256_store_si256((__m256i*)(p + 96), d);
        p += 128;
        q += 128;
    }
    while (p < last) {
        _mm256_store_si256((__m256i*)p, _mm256_loadu_si256((const __m256i*)q));
        p += 32;
        q += 32;
    }
    _mm256_storeu_si256((__m256i*)dst, head);
    _mm256_storeu_si256((__m256i*)last, tail);
}

/* The same bytes as splay_loop_copy (n >= 64, not overlapping), with the aligned stores going
 * DOWN from the end: the last 32 and the first 32 bytes by unaligned stores, everything between by
 * 32-byte loads and aligned stores, four at a time, highest address first. */
__attribute__((target("avx2"))) static void splay_loop_copy_backward(char* dst, const char* src,
                                                                     size_t n) {
    __m256i head = _mm256_loadu_si256((const __m256i*)src);
    __m256i tail = _mm256_loadu_si256((const __m256i*)(src + n - 32));
    /* i: offset of the highest aligned block that ends below dst + n (the tail covers the rest);
     * the lowest block stored starts 1..32 bytes past dst, and the head covers what is below it */
    ptrdiff_t i = (ptrdiff_t)(((uintptr_t)(dst + n - 1) & ~(uintptr_t)31) - 32 - (uintptr_t)dst);
    _mm256_storeu_si256((__m256i*)(dst + n - 32), tail);
    while (i > 96) {
        __m256i a = _mm256_loadu_si256((const __m256i*)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i*)(src + i - 32));
        __m256i c = _mm256_loadu_si256((const __m256i*)(src + i - 64));
        __m256i d = _mm256_loadu_si256((const __m256i*)(src + i - 96));
        _mm256_store_si256((__m256i*)(dst + i), a);
        _mm256_store_si256((__m256i*)(dst + i - 32), b);
        _mm256_store_si256((__m256i*)(dst + i - 64), c);
        _mm256_store_si256((__m256i*)(dst + i - 96), d);
        i -= 128;
    }
    while (i > 0) {
        _mm256_store_si256((__m256i*)(dst + i), _mm256_loadu_si256((const __m256i*)(src + i)));
        i -= 32;
    }
    _mm256_storeu_si256((__m256i*)dst, head);
}

/* Whether the CPU can run splay_loop_copy (AVX2, with the OS saving its registers). */
static int splay_loop_copy_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* Turns the loop on for AMD CPUs with ERMS (the ones glibc 2.36 gives rep movsb) and AVX2;
 * returns whether it is on. */
static int splay_large_copy_init(void) {
    unsigned int a, b, c, d;
    int amd, erms;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return splay_loop_copy_on = 0;
    amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;   /* "AuthenticAMD" */
    erms = a >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 9));
    return splay_loop_copy_on = amd && erms && splay_loop_copy_supported();
}

/* Whether a copy of n bytes may go through the loops (the size and the CPU; the addresses
 * decide the rest, splay_large_copy_path). */
static inline int splay_large_copy_may_loop(size_t n) {
    return splay_loop_copy_on && n >= SPLAY_LOOP_COPY_MIN && n < SPLAY_LOOP_COPY_MAX;
}

/* Which copy splay_large_copy makes of n bytes from src to dst. */
static inline int splay_large_copy_path(const char* dst, const char* src, size_t n) {
    uintptr_t distance = ((uintptr_t)dst - (uintptr_t)src) & 4095;
    if (!splay_large_copy_may_loop(n))
        return SPLAY_COPY_MEMCPY;
    if (!(distance & 31))
        return SPLAY_COPY_MEMCPY;
    return distance < SPLAY_ALIAS_WINDOW ? SPLAY_COPY_BACKWARD : SPLAY_COPY_FORWARD;
}

/* A copy the loops may make (out of line: the common, small copies only test the size). */
static __attribute__((noinline)) void splay_large_copy_sized(char* dst, const char* src, size_t n) {
    switch (splay_large_copy_path(dst, src, n)) {
    case SPLAY_COPY_FORWARD:
        splay_loop_copy(dst, src, n);
        return;
    case SPLAY_COPY_BACKWARD:
        splay_loop_copy_backward(dst, src, n);
        return;
    default:
        memcpy(dst, src, n);
    }
}

static inline void splay_large_copy(char* dst, const char* src, size_t n) {
    if (splay_large_copy_may_loop(n))
        splay_large_copy_sized(dst, src, n);
    else
        memcpy(dst, src, n);
}

#else
#define SPLAY_LOOP_COPY_BUILT 0
static int splay_loop_copy_supported(void) { return 0; }
static void splay_loop_copy(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }
static void splay_loop_copy_backward(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }
static int splay_large_copy_init(void) { return 0; }
static inline int splay_large_copy_path(const char* dst, const char* src, size_t n) {
    (void)dst; (void)src; (void)n;
    return SPLAY_COPY_MEMCPY;
}
static inline void splay_large_copy(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }
#endif

#endif
