"""Dense (fully connected) layer kernels: one GEMM plus a fused bias/activation pass.

Forward:  z = x @ w + b, y = act(z)          x (n, in), w (in, units), y (n, units)
Backward: dz = dy * act'(.), dw = x^T dz, db = sum_rows(dz), dx = dz w^T

Rows are split into one block per thread; each thread runs a single-threaded
GEMM on its block and then adds the bias and applies the activation while the
block is still in cache. Small problems run on the calling thread alone.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

from fastnet._kernels._activations cimport act_grad_row, act_row, needs_input, ACT_LINEAR
from fastnet._kernels._blas cimport gemm, gemm_parallel

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 17


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t rows, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or rows < 2 * n_threads:
        return 1
    return n_threads


def forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b,
            floating[:, ::1] z, floating[:, ::1] y, int act, double alpha=0.0,
            int n_threads=1):
    """y = act(x @ w + b). ``b`` may be None; ``z`` receives the pre-activation
    (required when the activation's derivative needs it; None computes it in y)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], units = w.shape[1]
    cdef Py_ssize_t chunk, n_chunks, t, lo, hi, r, j
    cdef bint keep_z = z is not None
    cdef floating *zp
    cdef const floating *bp = NULL
    if w.shape[0] != k or y.shape[0] != n or y.shape[1] != units:
        raise ValueError(f"dense forward: x {(n, k)}, w {(w.shape[0], units)}, y {(y.shape[0], y.shape[1])}")
    if b is not None:
        if b.shape[0] != units:
            raise ValueError("dense forward: bias size differs from units")
        bp = &b[0]
    if needs_input(act) and not keep_z:
        raise ValueError("dense forward: this activation needs a z buffer")
    if keep_z and (z.shape[0] != n or z.shape[1] != units):
        raise ValueError("dense forward: z must have the output's shape")
    if n == 0 or units == 0:
        return
    zp = &z[0, 0] if keep_z else &y[0, 0]
    cdef int nt = _threads_for(n * k * units, n, n_threads)
    chunk = (n + nt - 1) // nt
    n_chunks = (n + chunk - 1) // chunk
    for t in prange(n_chunks, nogil=True, num_threads=nt, schedule="static"):
        lo = t * chunk
        hi = min(n, lo + chunk)
        gemm(False, False, hi - lo, units, k, <floating>1, &x[lo, 0] if k > 0 else NULL, k,
             &w[0, 0] if k > 0 else NULL, units, <floating>0, zp + lo * units, units)
        for r in range(lo, hi):
            if bp != NULL:
                for j in range(units):
                    zp[r * units + j] = zp[r * units + j] + bp[j]
            act_row(act, zp + r * units, &y[r, 0], units, alpha)


def backward(const floating[:, ::1] dy, const floating[:, ::1] x, const floating[:, ::1] w,
             const floating[:, ::1] y, const floating[:, ::1] z, floating[:, ::1] dz,
             floating[:, ::1] dw, floating[::1] db, floating[:, ::1] dx,
             int act, double alpha=0.0, int n_threads=1):
    """Gradients of a dense layer.

    ``dz`` is scratch of dy's shape (may be None for a linear activation, or the
    same array as ``dy`` when dy may be overwritten). ``dw``/``db``/``dx`` may be
    None to skip them (frozen weights, no bias, first layer).
    """
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], units = w.shape[1]
    cdef Py_ssize_t r, j, c0, c1, blk
    cdef const floating *g
    cdef double acc
    cdef int nt
    if dy.shape[0] != n or dy.shape[1] != units or w.shape[0] != k:
        raise ValueError("dense backward: shapes of dy, x and w do not agree")
    if n == 0:
        if dw is not None:
            dw[:, :] = 0
        if db is not None:
            db[:] = 0
        return
    nt = _threads_for(n * units * 8, n, n_threads)
    if act == ACT_LINEAR:
        g = &dy[0, 0]
    else:
        if dz is None or dz.shape[0] != n or dz.shape[1] != units:
            raise ValueError("dense backward: dz scratch must have dy's shape")
        if needs_input(act) and z is None:
            raise ValueError("dense backward: this activation needs z")
        for r in prange(n, nogil=True, num_threads=nt, schedule="static"):
            act_grad_row(act, &dy[r, 0], &y[r, 0], &z[r, 0] if needs_input(act) else NULL,
                         &dz[r, 0], units, alpha)
        g = &dz[0, 0]
    with nogil:
        if db is not None:
            # Column blocks per thread: each sums its columns over all rows.
            nt = _threads_for(n * units * 8, units, n_threads)
            blk = (units + nt - 1) // nt
            for c0 in prange(0, units, blk, num_threads=nt, schedule="static"):
                c1 = min(units, c0 + blk)
                for j in range(c0, c1):
                    db[j] = 0
                for r in range(n):
                    for j in range(c0, c1):
                        db[j] = db[j] + g[r * units + j]
        if dw is not None and k > 0:
            gemm_parallel(True, False, k, units, n, <floating>1, &x[0, 0], k, g, units,
                          <floating>0, &dw[0, 0], units, n_threads)
        if dx is not None and k > 0:
            gemm_parallel(False, True, n, k, units, <floating>1, g, units, &w[0, 0], units,
                          <floating>0, &dx[0, 0], k, n_threads)
