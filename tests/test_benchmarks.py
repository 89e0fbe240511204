"""The step-time benchmark end to end on tiny sizes: the JSON it writes, not how fast anything is."""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchmarks import common, conv_layers, step_time
from benchmarks.models import CNN_LAYERS, MODELS, Conv, unet_layers

TINY = ["--warmup=1", "--windows=1", "--steps-per-window=2", "--fast-init", "--wait-idle=0"]
UNET = ["--model=unet", "--unet-width=4", "--unet-depth=2", "--image-size=32", "--batch-size=2"]


def _run(tmp_path, argv):
    path = tmp_path / "out.json"
    assert step_time.main([*argv, *TINY, f"--json={path}"]) == 0
    return json.loads(path.read_text())


def _positive(d, *keys):
    for key in keys:
        value = d[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def _check_side(r, compiled=True):
    _positive(r, "images_per_s", "flops_per_step", "flops_per_s")
    assert ("compile_s" in r) == compiled
    if compiled:
        _positive(r, "compile_s")
    _positive(r["step_ms"], "median", "q1", "q3", "min", "max")
    assert r["step_ms"]["min"] <= r["step_ms"]["median"] <= r["step_ms"]["max"]
    assert len(r["windows_ms"]) == 1


def test_cnn_with_epoch(tmp_path):
    out = _run(tmp_path, ["--model=cnn", "--batch-size=8", "--epoch", "--epoch-steps=2"])
    assert out["config"]["batch_size"] == 8 and out["config"]["image_size"] == 28
    assert out["machine"]["backend"] and out["machine"]["cores"] >= 1
    _check_side(out["jaxadl"])
    assert "torch" not in out and "ratio_jaxadl_over_torch" not in out
    e = out["epoch"]
    assert e["steps"] == 2 and e["images"] == 16
    _positive(
        e,
        "on_device_s",
        "host_loop_s",
        "on_device_images_per_s",
        "host_loop_images_per_s",
        "host_over_device",
    )


def test_trials_together(tmp_path, capsys):
    out = _run(tmp_path, ["--model=cnn", "--batch-size=8", "--trials-together=2", "--epoch-steps=2"])
    t = out["together"]
    assert t["trials"] == 2 and t["steps"] == 2 and t["vectorize"] is False  # CPU: unrolled
    _positive(t, "together_s_per_trial", "apart_s_per_trial", "compile_together_s", "compile_one_trial_s")
    assert t["together_over_apart"] == pytest.approx(t["together_s_per_trial"] / t["apart_s_per_trial"])
    assert "together / apart" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        step_time.main(["--trials-together=1", *TINY])
    assert e.value.code == 2


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_unet(tmp_path):
    """The tiny U-Net, side by side with PyTorch when torch is installed."""
    torch = _has_torch()
    out = _run(
        tmp_path, [*UNET, "--batch-norm", "--optimizer=sgd", f"--compare={'torch' if torch else 'none'}"]
    )
    assert out["config"]["model"] == "unet"
    _check_side(out["jaxadl"])
    if torch:
        _check_side(out["torch"], compiled=False)
        _positive(out, "ratio_jaxadl_over_torch")


def test_cnn_compare_torch(tmp_path):
    pytest.importorskip("torch")
    out = _run(
        tmp_path,
        ["--model=cnn", "--batch-size=8", "--optimizer=rprop", "--batch-norm", "--compare=torch", "--phases"],
    )
    for phase in ("forward", "forward+backward", "step"):  # where the time goes, on both sides
        assert set(out["phases_ms"][phase]) == {"jaxadl", "torch"}
        _positive(out["phases_ms"][phase], "jaxadl", "torch")
    _check_side(out["jaxadl"])
    _check_side(out["torch"], compiled=False)
    _positive(out, "ratio_jaxadl_over_torch")
    assert out["machine"]["torch_threads"] >= 1


def test_without_torch():
    """Importing the benchmark never imports torch; --compare=torch without torch exits 2 with the hint."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Block())
        import importlib.util
        importlib.util.find_spec = lambda name, *a: None if name == "torch" else _orig(name, *a)
        from benchmarks import step_time
        assert "torch" not in sys.modules
        sys.exit(step_time.main(["--compare=torch"]))
        """
    )
    code = code.replace(
        "import importlib.util\n", "import importlib.util\n_orig = importlib.util.find_spec\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install .[torch]" in proc.stderr


def test_bad_arguments_name_the_flag(capsys, tmp_path):
    for module, argv, flag in (
        (step_time, ["--lr=-1"], "--lr must be > 0, got -1.0"),
        (step_time, ["--wait-idle=-5"], "--wait-idle must be >= 0, got -5.0"),
        (step_time, [f"--json={tmp_path}"], f"--json {tmp_path} is a folder; name a file to write"),
        (
            conv_layers,
            [f"--json={tmp_path}/no/x.json", "--compare=none"],
            f"--json {tmp_path}/no/x.json: the folder {tmp_path}/no does not exist",
        ),
        (step_time, ["--model=unet", "--image-size=30"], "--image-size 30 is not divisible by 2**4"),
        (step_time, ["--model=unet", "--unet-depth=9"], "--image-size 256 is not divisible by 2**9"),
        (step_time, ["--windows=0"], "--windows must be >= 1"),
        (step_time, ["--warmup=-1"], "--warmup must be >= 0"),
        (conv_layers, ["--calls=0", "--compare=none"], "--calls must be >= 1"),
    ):
        with pytest.raises(SystemExit) as e:
            module.parse_args(argv)
        assert e.value.code == 2
        assert flag in capsys.readouterr().err


def test_step_time_config_fills_the_model_defaults():
    cnn, unet = step_time.parse_args([]), step_time.parse_args(["--model=unet"])
    assert (cnn.batch_size, cnn.image_size, cnn.steps_per_window) == (128, 28, 10)
    assert (unet.batch_size, unet.image_size, unet.steps_per_window) == (4, 256, 3)
    assert step_time.parse_args(["--batch-size=7"]).batch_size == 7
    assert conv_layers.parse_args(["--model=unet", "--compare=none"]).batch_size == 4


def test_busy_machine_is_flagged_not_valid():
    idle = {"load_1min": 0.4, "runnable": 1}
    assert common.busy_reason(idle, idle, cores=2) is None
    reason = common.busy_reason({"load_1min": 5.3, "runnable": 1}, idle, cores=2)
    assert reason == "1-minute load 5.30 before the first window (> 1)"
    reason = common.busy_reason(idle, {"load_1min": 0.9, "runnable": 6}, cores=2)
    assert reason == "6 runnable processes after (> 3)"
    assert common.busy_reason({}, {}, cores=2) is None  # no figures from the OS: nothing to say


def test_the_json_records_load_threads_and_validity(tmp_path, capsys):
    out = _run(tmp_path, ["--model=cnn", "--batch-size=8"])
    machine = out["machine"]
    assert machine["xla_threads"] == common.num_cores()
    for snap in (machine["load_start"], machine["load_end"]):
        assert snap["load_1min"] >= 0 and snap["runnable"] >= 1
    assert out["command"].startswith("python -m benchmarks.step_time --model=cnn")  # the shared stamp
    assert (out["load_before"], out["load_after"]) == (machine["load_start"], machine["load_end"])
    expected = common.busy_reason(machine["load_start"], machine["load_end"], machine["cores"])
    assert out["busy"] == expected and out["valid_for_comparison"] is (expected is None)
    printed = capsys.readouterr().out
    assert "threads: jaxadl (XLA)" in printed
    assert ("BUSY MACHINE" in printed) is (expected is not None)


def test_flax_pool_flag_selects_the_pool():
    fast, plain = (step_time.parse_args(["--model=cnn", *flags]) for flags in ([], ["--flax-pool"]))
    assert fast.bench.network(fast).fast_pool and not plain.bench.network(plain).fast_pool


def test_the_model_flag_picks_one_registered_network():
    """--model's choices are the registry's keys; each network's defaults, shapes and labels come from it."""
    assert step_time.StepTimeConfig.__dataclass_fields__["model"].metadata["choices"] == tuple(MODELS)
    for name, bench in MODELS.items():
        args = step_time.parse_args([f"--model={name}"])
        assert args.bench is bench and args.batch_size == bench.batch_size
        split = bench.random_split(3, 32, seed=0)
        assert split.images.shape == (3, *args.bench.input_shape(32)) and split.images.dtype == np.uint8
        assert len(split.labels) == 3 and bench.convolutions()


def test_conv_layers_times_the_ops_it_names(tmp_path):
    """Both sides compute the same forward, dx and dw (so the profile compares like with like); the JSON."""
    pytest.importorskip("torch")

    for conv in (Conv("v", 12, 8, 6, 3), Conv("s", 8, 4, 5, 3, "SAME")):
        x, w, g = conv_layers.arrays(4, conv)
        jx, tx = conv_layers.jax_ops(x, w, g, conv.padding), conv_layers.torch_ops(x, w, g, conv.padding)
        nchw = lambda a: np.asarray(a).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(tx["forward"]().numpy(), nchw(jx["forward"]()), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(tx["dx"]()[0].numpy(), nchw(jx["dx"]()), rtol=1e-4, atol=1e-4)
        dw_torch = tx["dw"]()[1].numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
        np.testing.assert_allclose(dw_torch, np.asarray(jx["dw"]()), rtol=1e-4, atol=1e-3)

    path = tmp_path / "layers.json"
    argv = ["--batch-size=2", "--windows=1", "--calls=1", "--wait-idle=0", f"--json={path}"]
    assert conv_layers.main(argv) == 0
    out = json.loads(path.read_text())
    assert list(out["layers_ms"]) == [c.name for c in CNN_LAYERS]
    for ops in out["layers_ms"].values():
        assert list(ops) == ["forward", "dx", "dw"]
        for ms in ops.values():
            _positive(ms, "jaxadl", "torch")
    # the step's total leaves out conv1's input gradient, which training never computes
    first = out["layers_ms"][CNN_LAYERS[0].name]
    want = (
        sum(ms["jaxadl"] for ops in out["layers_ms"].values() for ms in ops.values()) - first["dx"]["jaxadl"]
    )
    assert out["total_ms"]["jaxadl"] == pytest.approx(want)
    assert out["valid_for_comparison"] == (out["busy"] is None)


@pytest.mark.parametrize("depth,width,side", [(4, 16, 256), (2, 4, 32)])
def test_conv_layers_lists_the_unets_convolutions(depth, width, side):
    """The U-Net's distinct shapes times their counts are exactly the model's convolutions."""
    import jax
    import jax.numpy as jnp

    from jaxadl import UNet

    model = UNet(depth=depth, base_features=width)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, side, side, 1))))["params"]
    leaves = jax.tree_util.tree_leaves_with_path(params)
    kernels = sorted((v.shape[0], v.shape[2], v.shape[3]) for p, v in leaves if p[-1].key == "kernel")
    listed = sorted((c.k, c.cin, c.cout) for c in unet_layers(depth, width, side) for _ in range(c.count))
    assert listed == kernels
