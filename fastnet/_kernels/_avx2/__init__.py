"""AVX2/FMA builds of fastnet's kernels (compiled by setup.py on x86-64; chosen at import)."""
