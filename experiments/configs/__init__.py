"""The experiments' training recipes as frozen config values, one module per experiment (as in the configs
of the flax examples and big_vision); each recipe's docstring carries the command and the figure it reached."""
