"""The AVX2 build of the kernels and the portable one agree, and the choice is explicit."""
import json
import os
import subprocess
import sys

import fastnet._kernels as K

SCRIPT = r"""
import json, numpy as np
import fastnet._kernels as K
from fastnet._kernels import dense, _activations
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 33)).astype(np.float32)
w = rng.standard_normal((33, 17)).astype(np.float32)
b = rng.standard_normal(17).astype(np.float32)
y = np.empty((64, 17), np.float32)
dense.forward(x, w, b, None, y, 3, 0.0, 1)
z = np.empty_like(y)
_activations.forward(2, y, z, 0.0, 1)
print(json.dumps({"variant": K.VARIANT, "file": dense.__file__, "y": z.ravel().tolist()}))
"""


def _run(choice):
    env = dict(os.environ, FASTNET_KERNELS=choice)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_baseline_is_selectable_and_variants_agree():
    base = _run("baseline")
    assert base["variant"] == "baseline" and "_avx2" not in base["file"]
    auto = _run("auto")
    if K.VARIANT == "avx2":
        assert auto["variant"] == "avx2" and "_avx2" in auto["file"]
    import numpy as np
    np.testing.assert_allclose(auto["y"], base["y"], rtol=1e-5, atol=1e-6)


def test_unknown_choice_is_refused():
    env = dict(os.environ, FASTNET_KERNELS="sse9")
    out = subprocess.run([sys.executable, "-c", "import fastnet"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "FASTNET_KERNELS must be 'auto', 'baseline' or 'avx2'" in out.stderr


def test_loaded_module_keeps_its_canonical_name():
    from fastnet._kernels import dense

    assert dense.__name__ == "fastnet._kernels.dense"
    if K.VARIANT == "avx2":
        assert os.sep + "_avx2" + os.sep in dense.__file__


def test_cpu_features_come_from_cpuid():
    # fastnet reads CPUID itself; where numpy's (private) table of the same bits exists,
    # both must agree, and the choice of build follows them.
    from fastnet._kernels import _cpu

    ours = _cpu.features()
    assert set(ours) == {"AVX", "AVX2", "FMA3", "F16C"}
    assert _cpu.has_avx2() == all(ours.values())
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as numpy_table
    except ImportError:
        numpy_table = None
    if numpy_table is not None:
        assert ours == {k: bool(numpy_table.get(k)) for k in ours}
    if os.environ.get("FASTNET_KERNELS", "auto") == "auto" and os.path.isdir(
            os.path.join(os.path.dirname(K.__file__), "_avx2")):
        assert (K.VARIANT == "avx2") == _cpu.has_avx2()
