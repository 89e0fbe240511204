"""Without PyTorch the parity and benchmark tests skip; the run's summary says how many, and why."""

import sys

pytest_plugins = ["pytester"]

CONFTEST = "from tests.conftest import pytest_terminal_summary  # noqa: F401\n"


def test_the_summary_counts_the_tests_torch_skipped(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch fails, as where it is not installed
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_parity="import pytest\n\ntorch = pytest.importorskip('torch')\n\n\ndef test_a():\n    pass\n",
        test_mixed="""
import pytest


@pytest.mark.parametrize("n", [1, 2])
def test_needs_torch(n):
    pytest.importorskip("torch")


def test_skipped_for_another_reason():
    pytest.skip("no GPU")


def test_runs():
    pass
""",
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4)  # the module-level skip counts once, as pytest counts it
    result.stdout.fnmatch_lines(
        ["3 skipped: PyTorch is not installed, and the parity and benchmark tests need it (the CPU wheel: *"]
    )


def test_no_line_when_torch_skipped_nothing(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("import pytest\n\n\ndef test_other():\n    pytest.skip('no GPU')\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    assert "PyTorch" not in result.stdout.str()
