# Checked access to numpy arrays for the kernels' Python entry points.
#
# Entry points take ndarrays and read their data pointers through numpy's C API
# instead of typed memoryviews: acquiring a memoryview costs ~0.25 us per array,
# which for a small model (a dozen kernel calls per training step, five arrays
# each) was most of the step. These checks cost a few nanoseconds each.
cimport numpy as cnp

cdef inline int float_type(object a, const char *what) except -1:
    """NPY_FLOAT32 or NPY_FLOAT64 for a float ndarray; TypeError otherwise."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{what.decode()} must be a numpy array, received {type(a).__name__}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{what.decode()} must be float32 or float64, received {a.dtype}")
    return t


cdef inline char *data(object a, int typenum, int ndim, bint writable, const char *what) except NULL:
    """Data pointer of a C-contiguous ndarray of the given type and rank (ndim < 0: any)."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{what.decode()} must be a numpy array, received {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{what.decode()} has dtype {(<object>arr).dtype}; all arrays of a call must share one float dtype")
    if ndim >= 0 and cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{what.decode()} must have {ndim} dimensions, received shape {(<object>arr).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{what.decode()} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{what.decode()} must be writable")
    cdef char *p = <char *>cnp.PyArray_DATA(arr)
    if p == NULL:  # numpy gives a valid pointer even for empty arrays; guard anyway
        raise ValueError(f"{what.decode()} has no data")
    return p


cdef inline Py_ssize_t dim(object a, int i) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray>a, i)


cdef inline Py_ssize_t size(object a) noexcept:
    return cnp.PyArray_SIZE(<cnp.ndarray>a)
