"""Optimizers: a factory over optax (adam, adamw, sgd, rprop) and a correct iRprop- transformation."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adam", "sgd", "rprop")
SCHEDULES = ("constant", "onecycle", "cosine")


class RpropState(NamedTuple):
    """Per-parameter step sizes and the previous gradient (zeroed where its sign flipped)."""

    step_sizes: optax.Updates
    prev_grads: optax.Updates


def rprop(
    learning_rate: float = 0.01,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> optax.GradientTransformation:
    """iRprop- (Igel & Huesken 2000), the variant of torch.optim.Rprop, without optax 0.2.8's one-step lag.

    Each parameter moves by -sign(g) * step; the step grows by eta_plus while the gradient keeps its sign
    and shrinks by eta_minus when it flips, in which case that parameter skips the move and forgets the
    gradient. The first update is -sign(g) * learning_rate. Meant for full-batch gradients.
    """

    def init_fn(params: optax.Params) -> RpropState:
        return RpropState(
            step_sizes=jax.tree.map(lambda p: jnp.full_like(p, learning_rate), params),
            prev_grads=jax.tree.map(jnp.zeros_like, params),
        )

    def update_fn(grads, state, params=None):
        del params

        def leaf(g, prev, step):
            prod = g * prev
            step = jnp.where(prod > 0, jnp.minimum(step * eta_plus, max_step_size), step)
            step = jnp.where(prod < 0, jnp.maximum(step * eta_minus, min_step_size), step)
            g = jnp.where(prod < 0, jnp.zeros_like(g), g)
            return -jnp.sign(g) * step, g, step

        out = jax.tree.map(leaf, grads, state.prev_grads, state.step_sizes)
        treedef = jax.tree.structure(grads)
        leaves = treedef.flatten_up_to(out)
        updates = treedef.unflatten([u for u, _, _ in leaves])
        prev = treedef.unflatten([g for _, g, _ in leaves])
        steps = treedef.unflatten([s for _, _, s in leaves])
        return updates, RpropState(step_sizes=steps, prev_grads=prev)

    return optax.GradientTransformation(init_fn, update_fn)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """What optimizer to build; `schedule` shapes the learning rate over `total_steps`."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # decoupled (AdamW-style) for adam; added to the gradient for sgd and rprop
    schedule: str = "constant"
    warmup_fraction: float = 0.2  # onecycle/cosine: share of steps spent warming up
    grad_clip: float = 0.0  # global-norm clip; 0 disables
    eta_minus: float = 0.5  # rprop: step-size factor when a gradient's sign flips
    eta_plus: float = 1.2  # rprop: step-size factor while it keeps its sign
    min_step: float = 1e-6  # rprop: smallest step size
    max_step: float = 50.0  # rprop: largest step size

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.eta_minus < 1:
            raise ValueError(f"eta_minus must be in (0, 1), got {self.eta_minus}")
        if not self.eta_plus > 1:
            raise ValueError(f"eta_plus must be > 1, got {self.eta_plus}")
        if not self.weight_decay >= 0:  # NaN too
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.momentum >= 0:
            raise ValueError(f"momentum must be >= 0, got {self.momentum}")
        if not self.min_step > 0:
            raise ValueError(f"min_step must be > 0, got {self.min_step}")
        if not self.max_step >= self.min_step:
            raise ValueError(f"max_step must be >= min_step, got {self.max_step} against {self.min_step}")


def learning_rate_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """The learning rate at each step: constant, one-cycle (linear warm-up, cosine down) or warm-up+cosine."""
    total_steps = max(int(total_steps), 1)
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.lr)
    warmup = max(int(round(cfg.warmup_fraction * total_steps)), 1)
    if cfg.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(
            total_steps, cfg.lr, pct_start=warmup / total_steps, div_factor=25.0, final_div_factor=1e3
        )
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, warmup, max(total_steps, warmup + 1), cfg.lr * 1e-3
    )


def _decay_mask(params: optax.Params) -> optax.Params:
    """Weight decay applies to kernels only, not to biases or batch-norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg: OptimConfig, total_steps: int = 1) -> optax.GradientTransformation:
    """Build the optax transformation for `cfg`; rprop ignores the schedule (it adapts its own steps)."""
    chain = []
    if cfg.grad_clip > 0:
        chain.append(optax.clip_by_global_norm(cfg.grad_clip))
    if cfg.name == "rprop":
        if cfg.weight_decay:  # Rprop sees only signs: the decay enters through the gradient
            chain.append(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask))
        chain.append(rprop(cfg.lr, cfg.eta_minus, cfg.eta_plus, cfg.min_step, cfg.max_step))
        return optax.chain(*chain)
    lr = learning_rate_schedule(cfg, total_steps)
    if cfg.name == "adam":
        chain.append(
            optax.adamw(lr, weight_decay=cfg.weight_decay, mask=_decay_mask)
            if cfg.weight_decay
            else optax.adam(lr)
        )
    else:
        if cfg.weight_decay:
            chain.append(optax.add_decayed_weights(cfg.weight_decay, mask=_decay_mask))
        chain.append(optax.sgd(lr, momentum=cfg.momentum or None, nesterov=cfg.nesterov))
    return optax.chain(*chain)
