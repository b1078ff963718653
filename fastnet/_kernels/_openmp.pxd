# Thread helpers shared by the kernels (OpenMP when compiled with it, serial otherwise).
cdef extern from "_compat.h" nogil:
    int FASTNET_HAVE_OPENMP
    int omp_get_thread_num()
    int omp_get_max_threads()
    int omp_get_num_threads()
    const char *fastnet_library_of(const void *p)
    unsigned int fastnet_denormals_flush()
    void fastnet_denormals_restore(unsigned int old)

cdef extern from "_fastmath.h" nogil:
    float fn_expf(float x)
    float fn_tanhf(float x)
    float fn_sigmoidf(float x)
