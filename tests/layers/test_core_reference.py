"""The foundation layers against the Keras reference cases (outputs, gradients, updates)."""
import pytest
from helpers import ATOL, RTOL, case_names, run_layer_case

CASES = case_names("layers", {"Dense", "Activation", "Flatten", "Reshape", "Dropout",
                              "BatchNormalization", "LayerNormalization"})


def test_every_foundation_case_is_covered():
    assert len(CASES) == 27


@pytest.mark.parametrize("name", CASES)
def test_layer_matches_keras(name, n_threads):
    # float32, rtol 1e-4 / atol 1e-5 (one layer, one step).
    run_layer_case(name, RTOL, ATOL)
