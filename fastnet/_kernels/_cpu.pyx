"""What the CPU (and the OS) support, read from CPUID: chooses between the kernels'
portable and AVX2 builds (fastnet._kernels). Built once, portable (setup.py)."""

cdef extern from *:
    """
    #if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    #include <intrin.h>
    #include <immintrin.h>
    /* CPUID leaf, subleaf -> eax, ebx, ecx, edx; 0 when the leaf is beyond the CPU's */
    static int fn_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
        int v[4];
        __cpuid(v, 0);
        if ((unsigned)v[0] < leaf) return 0;
        __cpuidex(v, (int)leaf, (int)sub);
        r[0] = v[0]; r[1] = v[1]; r[2] = v[2]; r[3] = v[3];
        return 1;
    }
    static unsigned long long fn_xgetbv0(void) { return _xgetbv(0); }
    #define FN_X86 1
    #elif (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #include <cpuid.h>
    static int fn_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
        if (__get_cpuid_max(0, 0) < leaf) return 0;
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
        return 1;
    }
    static unsigned long long fn_xgetbv0(void) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        return ((unsigned long long)hi << 32) | lo;
    }
    #define FN_X86 1
    #else
    #define FN_X86 0
    #endif

    /* Bit flags: 1 AVX, 2 AVX2, 4 FMA, 8 F16C; AVX and what builds on it only when the
       OS saves the YMM registers (OSXSAVE set and XCR0 bits 1-2). */
    static int fn_cpu_features(void) {
    #if FN_X86
        unsigned r[4] = {0, 0, 0, 0};
        int out = 0;
        if (!fn_cpuid(1, 0, r)) return 0;
        unsigned ecx1 = r[2];
        if (!(ecx1 & (1u << 27)) || (fn_xgetbv0() & 6) != 6) return 0;
        if (ecx1 & (1u << 28)) out |= 1;
        if (ecx1 & (1u << 12)) out |= 4;
        if (ecx1 & (1u << 29)) out |= 8;
        if (fn_cpuid(7, 0, r) && (r[1] & (1u << 5))) out |= 2;
        return (out & 1) ? out : 0;
    #else
        return 0;
    #endif
    }
    """
    int fn_cpu_features() noexcept nogil


def features():
    """The x86 features the AVX2 build needs, as {name: bool} (all False elsewhere)."""
    cdef int f = fn_cpu_features()
    return {"AVX": bool(f & 1), "AVX2": bool(f & 2), "FMA3": bool(f & 4), "F16C": bool(f & 8)}


def has_avx2():
    """True when the CPU and the OS run the AVX2 build's instructions (AVX, AVX2, FMA, F16C)."""
    return fn_cpu_features() == 15
