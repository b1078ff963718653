"""Plain-numpy twins of fastnet's compiled kernels: the oracle for the tests.

Each function computes in the dtype it is given (float64 for finite-difference
checks) with the clearest formula rather than the fastest, so a disagreement with
the compiled kernel points at the kernel.
"""
