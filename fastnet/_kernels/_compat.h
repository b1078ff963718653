/* Portability shims for fastnet's kernels: OpenMP when present, library lookup. */
#ifndef FASTNET_COMPAT_H
#define FASTNET_COMPAT_H

#ifdef _OPENMP
#include <omp.h>
#define FASTNET_HAVE_OPENMP 1
#else
#define FASTNET_HAVE_OPENMP 0
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#if defined(_WIN32)
static inline const char *fastnet_library_of(const void *p) { (void)p; return 0; }
#else
#include <dlfcn.h>
/* Path of the shared object that holds the code at p (used to find the BLAS library). */
static inline const char *fastnet_library_of(const void *p) {
    Dl_info info;
    if (p && dladdr(p, &info) && info.dli_fname) return info.dli_fname;
    return 0;
}
#endif

/* Denormal (subnormal) floats flushed to zero on the calling thread, as inputs (DAZ) and
   as results (FTZ), until fastnet_denormals_restore. An optimizer's moment estimates
   decay geometrically wherever the gradients are (near) zero and reach the subnormal
   range after some hundreds of steps; arithmetic on subnormals then runs many times
   slower on x86, and which runs hit it depends on the initial weights. Values that
   small (below 1.2e-38 in float32) change no update by a representable amount.
   The previous mode is returned so that the caller's own setting is kept. */
#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
static inline unsigned int fastnet_denormals_flush(void) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void fastnet_denormals_restore(unsigned int old) { _mm_setcsr(old); }
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
static inline unsigned int fastnet_denormals_flush(void) {
    unsigned long long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr | (1ull << 24))); /* FZ */
    return (unsigned int)fpcr;
}
static inline void fastnet_denormals_restore(unsigned int old) {
    unsigned long long fpcr = old;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
}
#else
static inline unsigned int fastnet_denormals_flush(void) { return 0; }
static inline void fastnet_denormals_restore(unsigned int old) { (void)old; }
#endif

#endif
