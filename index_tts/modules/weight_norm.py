"""The one weight-norm wrapper every module uses."""

import warnings

from torch import nn


def weight_normed(module: nn.Module) -> nn.Module:
    """Legacy `torch.nn.utils.weight_norm`: it yields exactly the checkpoints' `weight_g`/`weight_v`
    keys (the parametrizations API would not). Its deprecation warning is silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(module)
