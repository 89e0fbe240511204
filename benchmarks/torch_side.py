"""PyTorch's side of the step benchmark: the same network (benchmarks.torch_models, initialised with the
jaxadl side's weights through jaxadl.porting), optimizer and loss, run eagerly on the CPU or CUDA.

Importing this module does not import torch; building a `TorchSide` does.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from benchmarks.common import num_cores
from benchmarks.step_config import StepTimeConfig


def torch_optimizer(torch: Any, params: Any, args: StepTimeConfig) -> Any:
    """torch.optim's Adam, SGD or Rprop (jaxadl's Rprop settings) at the benchmark's learning rate."""
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr)
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr)
    return torch.optim.Rprop(params, lr=args.lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0))


class TorchSide:
    """The same network, weights, optimizer and loss in PyTorch (eager, CPU or CUDA)."""

    name = "torch"

    def __init__(self, args: StepTimeConfig, model: Any, variables: Any):
        """`model` is the jaxadl side's flax module, `variables` its initial weights (host arrays)."""
        import torch

        from jaxadl.porting import to_torch_state_dict

        self.torch = torch
        torch.set_num_threads(num_cores())
        self.device = torch.device(
            "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
        )
        bench = args.bench
        net = bench.torch_network(args, variables)
        self.loss_fn = bench.torch_loss()
        sd = to_torch_state_dict(variables, model)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
        self.net = net.to(self.device).train()
        self.opt = torch_optimizer(torch, self.net.parameters(), args)
        batch = bench.random_split(args.batch_size, args.image_size, args.seed)
        on_device = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        self.images = on_device(batch.images.transpose(0, 3, 1, 2))
        self.labels = on_device(bench.torch_labels(batch.labels))
        self.compile_seconds = None  # eager: nothing is compiled ahead of time

    def _loss(self) -> Any:
        """The loss of the batch, gradients cleared (forward pass only)."""
        x = self.images.float() / 255.0
        self.opt.zero_grad(set_to_none=True)
        return self.loss_fn(self.net(x), self.labels)

    def _step(self) -> Any:
        loss = self._loss()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def compile_phases(self) -> None:
        """Nothing to compile: PyTorch runs eagerly."""

    def run_phase(self, phase: str, steps: int) -> float:
        if phase == "step":
            return self.run(steps)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = self._loss()
            if phase == "forward+backward":
                loss.backward()
        self._sync()
        return time.perf_counter() - t0

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        loss = None
        for _ in range(steps):
            loss = self._step()
        self._sync()
        seconds = time.perf_counter() - t0
        if loss is not None and not np.isfinite(float(loss)):
            raise FloatingPointError("torch loss became non-finite during the benchmark")
        return seconds

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
