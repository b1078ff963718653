"""Tests of optional features skip without their extra, but never in CI."""
import pytest
from helpers import optional_import, optional_required, skip_unless


def test_missing_extra_skips_with_the_install_command(monkeypatch):
    monkeypatch.delenv("FASTNET_REQUIRE_OPTIONAL", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert not optional_required()
    want = r"needs fastnet_no_such_module \(pip install -e '\.\[test,mpi\]'\)"
    with pytest.raises(pytest.skip.Exception, match=want):
        optional_import("fastnet_no_such_module", "mpi")


@pytest.mark.parametrize("var,value", [("FASTNET_REQUIRE_OPTIONAL", "1"), ("CI", "true")])
def test_missing_extra_fails_in_ci(monkeypatch, var, value):
    monkeypatch.delenv("FASTNET_REQUIRE_OPTIONAL", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(var, value)
    assert optional_required()
    with pytest.raises(pytest.fail.Exception, match="CI must run these tests"):
        skip_unless(False, "needs an mpiexec")
    skip_unless(True, "present: neither skips nor fails")


def test_present_module_is_returned():
    assert optional_import("json", "test").dumps([1]) == "[1]"
