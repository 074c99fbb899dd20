"""The one weight-norm wrapper every module uses."""

import contextlib
import warnings

from torch import nn
from torch.nn.utils.weight_norm import WeightNorm


def weight_normed(module: nn.Module) -> nn.Module:
    """Legacy `torch.nn.utils.weight_norm`: it yields exactly the checkpoints' `weight_g`/`weight_v`
    keys (the parametrizations API would not). Its deprecation warning is silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(module)


@contextlib.contextmanager
def weights_computed_once(model: nn.Module):
    """Within the block, every weight-normed layer of `model` uses the weight g * v / ||v||
    computed once on entry instead of on every call. Same values (the parameters do not change
    during inference); the DiT calls its 18 weight-normed layers 25 times per request."""
    fixed = []
    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, WeightNorm):
                setattr(module, hook.name, hook.compute_weight(module))
                del module._forward_pre_hooks[key]
                fixed.append((module, key, hook))
    try:
        yield model
    finally:
        for module, key, hook in fixed:
            module._forward_pre_hooks[key] = hook  # recomputes the weight on the next call again
