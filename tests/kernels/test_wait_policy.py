"""fastnet bounds OpenMP's spin-waiting unless the user chose a wait policy."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = ("import os, fastnet; "
         "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")


def _policy_after_import(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    clean.update(env)
    clean["PYTHONPATH"] = ROOT + os.pathsep + clean.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=clean, check=True)
    return out.stdout.strip()


def test_import_bounds_the_spin_by_default():
    assert _policy_after_import() == "None 30000"


@pytest.mark.parametrize("env,want", [({"OMP_WAIT_POLICY": "active"}, "active None"),
                                      ({"GOMP_SPINCOUNT": "10000"}, "None 10000"),
                                      ({"KMP_BLOCKTIME": "0"}, "None None")])
def test_a_policy_the_user_chose_is_kept(env, want):
    assert _policy_after_import(**env) == want
