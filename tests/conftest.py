"""Test set-up: the fast XLA:CPU flags are applied by importing jaxadl before any JAX computation."""

import jaxadl  # noqa: F401
