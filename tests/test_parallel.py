import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.parallel_check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("key", ["cnn_bnFalse", "cnn_bnTrue", "unet"])
def test_one_and_four_devices_agree(results, key):
    (losses1, val1), (losses4, val4) = results[key]
    # the first steps agree to float precision; later ones drift apart only through summation order
    np.testing.assert_allclose(losses1[:4], losses4[:4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses1, losses4, rtol=1e-2)
    np.testing.assert_allclose(val1, val4, rtol=1e-2)


def test_state_is_replicated_over_the_mesh(results):
    assert results["cnn_bnFalse_sharding"] == [True, 4]
    assert results["cnn_bnTrue_sharding"] == [True, 4]


def test_resume_on_another_device_count(results):
    whole, resumed = results["resume"]
    np.testing.assert_allclose(whole[:4], resumed[:4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(whole, resumed, rtol=1e-2)


def test_batch_must_divide_over_devices(results):
    assert "--batch-size 30 does not divide evenly over 4 devices" in results["indivisible"]
