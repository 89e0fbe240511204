import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a subprocess with 4 host devices trains 7 models (~1 min)


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


# Relative tolerances on the step losses: (first 4 steps, all 8). Measured (jax 0.10.2, 2-core CPUs):
# without batch norm they agree to 1.2e-7 on every step. With it, the cross-device statistics sum in
# another order and the difference grows with the steps, at a rate that depends on the CPU: 7.7e-6 by
# step 8 on the machine of 2026-11-27; on an AMD EPYC (2026-11-28) 9.0e-7 by step 4, then 5.4e-5 at
# step 5 and 5.2e-4 at step 8. The tolerances leave a margin of about 4x over the larger. Wrong
# cross-device statistics or gradients would differ from the first step on, by far more.
TOLERANCE = {"cnn_bnFalse": (1e-6, 5e-5), "cnn_bnTrue": (5e-6, 2e-3), "unet": (1e-6, 5e-5)}


@pytest.mark.parametrize("key", ["cnn_bnFalse", "cnn_bnTrue", "unet"])
def test_one_and_four_devices_agree(results, key):
    (losses1, val1), (losses4, val4) = results[key]
    early, later = TOLERANCE[key]
    np.testing.assert_allclose(losses1[:4], losses4[:4], rtol=early)
    np.testing.assert_allclose(losses1, losses4, rtol=later)
    np.testing.assert_allclose(val1, val4, rtol=5e-4)  # measured: 6.4e-5 (2026-11-27), 7.6e-5 (AMD EPYC)


def test_state_is_replicated_over_the_mesh(results):
    assert results["cnn_bnFalse_sharding"] == [True, 4]
    assert results["cnn_bnTrue_sharding"] == [True, 4]


def test_resume_on_another_device_count(results):
    whole, resumed = results["resume"]  # the CNN with batch norm: its tolerances (above)
    early, later = TOLERANCE["cnn_bnTrue"]
    np.testing.assert_allclose(whole[:4], resumed[:4], rtol=early)  # measured: 2.2e-7; 9.0e-7 (AMD EPYC)
    np.testing.assert_allclose(whole, resumed, rtol=later)  # measured: 2.6e-6; 5.2e-4 (AMD EPYC)


def test_cli_trains_on_the_devices_asked_for(results):
    assert results["cli_devices"] == [0, 2]


def test_batch_must_divide_over_devices(results):
    assert "--batch-size 30 does not divide evenly over 4 devices" in results["indivisible"]
