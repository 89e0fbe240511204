"""The fast XLA:CPU flag is added only where the installed jaxlib knows it (older XLA aborts on it)."""

import pytest

from jaxadl import _xla_flags


@pytest.mark.parametrize(
    "version,known",
    [("0.6.2", False), ("0.8.0", False), ("0.8.9", False), ("0.9.0", True), ("0.9.0.dev20260101", True),
     ("0.10.2", True), ("1.0.0", True), (None, False), ("garbage", False)],
)  # fmt: skip
def test_flag_only_for_jaxlib_that_knows_it(version, known):
    assert _xla_flags.flag_supported(version) is known


@pytest.mark.parametrize(
    "env,version,expected",
    [
        ({}, "0.10.2", f"{_xla_flags.CPU_FLAGS}"),
        ({}, "0.8.0", None),  # too old: XLA_FLAGS left alone, so the first array operation does not abort
        ({"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, "0.10.2",
         f"--xla_force_host_platform_device_count=4 {_xla_flags.CPU_FLAGS}"),
        ({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}, "0.10.2",
         "--xla_cpu_experimental_ynn_fusion_type=dot"),  # the user's own choice wins
        ({"JAXADL_STOCK_XLA": "1"}, "0.10.2", None),
    ],
)  # fmt: skip
def test_apply_decides_from_env_and_version(monkeypatch, env, version, expected):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv("JAXADL_STOCK_XLA", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _xla_flags.apply(version)
    import os

    assert os.environ.get("XLA_FLAGS") == expected


def test_installed_jaxlib_gets_the_flag():
    """This install (pyproject's floor is jaxlib 0.9) knows the flag, so importing jaxadl set it."""
    import os

    assert _xla_flags.flag_supported(_xla_flags._jaxlib_version())
    assert "xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", "")
