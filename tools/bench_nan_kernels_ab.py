"""Before/after timing of the activation and pooling kernels in one process.

Usage: python tools/bench_nan_kernels_ab.py OLD_KERNELS_DIR

OLD_KERNELS_DIR is a copy of an earlier build's ``fastnet/_kernels`` folder (its
``.so`` files). The old and the current module are loaded side by side and timed
alternately (CPU time, one thread), so a machine shared with other work disturbs
both alike; min and median per kernel are printed, in microseconds.
"""
import glob
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastnet._kernels import VARIANT  # noqa: E402
from fastnet._kernels import _activations as aa  # noqa: E402
from fastnet._kernels import pooling as pa  # noqa: E402
from fastnet.utils.shape_utils import pool_geometry  # noqa: E402


def load(folder, name):
    sub = os.path.join(folder, "_avx2") if VARIANT == "avx2" else folder
    (path,) = glob.glob(os.path.join(sub, name + ".*.so"))
    spec = importlib.util.spec_from_file_location("old_kernels." + name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


pb = load(sys.argv[1], "pooling")
ab = load(sys.argv[1], "_activations")
print("variant", VARIANT, "old:", pb.__file__)


def ab_time(new, old, args, reps=41, number=5):
    """(old min, old median, new min, new median) in microseconds, run alternately."""
    t_new, t_old = [], []
    for r in range(reps):
        order = ((new, t_new), (old, t_old)) if r % 2 else ((old, t_old), (new, t_new))
        for f, t in order:
            t0 = time.process_time()
            for _ in range(number):
                f(*args)
            t.append((time.process_time() - t0) / number * 1e6)
    return np.min(t_old), np.median(t_old), np.min(t_new), np.median(t_new)


def main():
    rng = np.random.default_rng(0)
    rows = []
    for dt in (np.float32, np.float64):
        tag = np.dtype(dt).name
        z = rng.normal(size=(4096, 256)).astype(dt)
        y = np.empty_like(z)
        dy = rng.normal(size=z.shape).astype(dt)
        dz = np.empty_like(z)
        for name, code in (("relu", 1), ("relu6", 13), ("hard_sigmoid", 12), ("leaky_relu", 14), ("elu", 5)):
            rows.append((f"act_fwd/{name}/{tag}",) + ab_time(aa.forward, ab.forward, (code, z, y, 0.2, 1)))
            aa.forward(code, z, y, 0.2, 1)
            rows.append((f"act_bwd/{name}/{tag}",)
                        + ab_time(aa.backward, ab.backward, (code, dy, y, z, dz, 0.2, 1)))
        x = rng.normal(size=(16, 64, 64, 32)).astype(dt)
        for label, (k, s, pad) in (("2x2", (2, 2, "valid")), ("3x3s1", (3, 1, "same"))):
            g = pool_geometry((64, 64), (k, k), (s, s), pad)
            yp = np.empty((16, g.oh, g.ow, 32), dt)
            arg = np.empty(yp.shape, np.int32)
            rows.append((f"maxpool_fwd/{label}/{tag}",)
                        + ab_time(pa.max_forward, pb.max_forward, (x, yp, arg, g, 1), 21, 2))
            rows.append((f"maxpool_fwd_noarg/{label}/{tag}",)
                        + ab_time(pa.max_forward, pb.max_forward, (x, yp, None, g, 1), 21, 2))
            dyp = rng.normal(size=yp.shape).astype(dt)
            dx = np.empty_like(x)
            relu_of = np.abs(yp)
            rows.append((f"maxpool_bwd_relu/{label}/{tag}",)
                        + ab_time(pa.max_backward, pb.max_backward, (dyp, arg, dx, 1, g, relu_of), 21, 2))
        x3 = x.reshape(16, 4096, 32)
        yg = np.empty((16, 32), dt)
        ag = np.empty((16, 32), np.int32)
        rows.append((f"global_max_fwd/{tag}",)
                    + ab_time(pa.global_max_forward, pb.global_max_forward, (x3, yg, ag, 1), 21, 2))
    print(f"{'kernel':34s} {'before min':>10s} {'median':>8s} {'after min':>10s} {'median':>8s}  ratio of medians")
    for r in rows:
        print(f"{r[0]:34s} {r[1]:10.0f} {r[2]:8.0f} {r[3]:10.0f} {r[4]:8.0f}  {r[4] / r[2]:5.2f}")


if __name__ == "__main__":
    main()
