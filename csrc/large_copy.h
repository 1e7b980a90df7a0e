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
 * So, on an x86-64 AMD CPU with ERMS and AVX2 (checked once, at import: splay_large_copy_init), a
 * copy of SPLAY_LOOP_COPY_MIN up to SPLAY_LOOP_COPY_MAX bytes whose two ends are differently aligned
 * modulo 32 goes through splay_loop_copy; every other copy, and every copy on other CPUs or
 * compilers, is memcpy. The bytes written are the same either way.
 *
 * Not handled: a destination 32-260 bytes past the source modulo 4 KiB makes the loop's loads wait
 * on its earlier stores (4 KiB aliasing); it then takes ~1.5 µs for 64 KiB, as memcpy does there.
 * glibc's vector loop copies backwards in that case. */
#ifndef SPLAY_LARGE_COPY_H
#define SPLAY_LARGE_COPY_H

#include <stdint.h>
#include <string.h>

#define SPLAY_LOOP_COPY_MIN 4096               /* below: glibc's vector code, not rep movsb */
#define SPLAY_LOOP_COPY_MAX (1024 * 1024)      /* above: beyond L2, glibc leaves rep movsb too */

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

static inline void splay_large_copy(char* dst, const char* src, size_t n) {
    if (splay_loop_copy_on && n >= SPLAY_LOOP_COPY_MIN && n < SPLAY_LOOP_COPY_MAX
            && (((uintptr_t)dst - (uintptr_t)src) & 31)) {
        splay_loop_copy(dst, src, n);
        return;
    }
    memcpy(dst, src, n);
}

#else
#define SPLAY_LOOP_COPY_BUILT 0
static int splay_loop_copy_supported(void) { return 0; }
static void splay_loop_copy(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }
static int splay_large_copy_init(void) { return 0; }
static inline void splay_large_copy(char* dst, const char* src, size_t n) { memcpy(dst, src, n); }
#endif

#endif
