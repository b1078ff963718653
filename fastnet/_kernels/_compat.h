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

#endif
