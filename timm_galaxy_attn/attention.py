"""Attention estimators of "Learn to Pay Attention" (Jetley et al., ICLR 2018) and a hook to read them.

An estimator scores every position ``i`` of a local feature map ``l`` against the global feature ``g``
(the compatibility ``c_i``), normalises the scores into an attention map ``a`` and returns the attended
vector ``g_s = sum_i a_i l_i`` (softmax) or ``mean_i a_i l_i`` (sigmoid).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

__all__ = ["AttentionEstimator", "capture_attention", "COMPATIBILITIES", "NORMALIZATIONS"]

COMPATIBILITIES = ("pc", "dp")
NORMALIZATIONS = ("softmax", "sigmoid")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming the allowed values."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, allowed))}.")
    return value


class AttentionEstimator(nn.Module):
    """One attention estimator: compatibility, normalisation and attention-weighted pooling.

    Args:
        dim: Channels of the local features and of the global feature.
        compatibility: ``'pc'`` (parametrised, ``c_i = u . (l_i + g)``) or ``'dp'`` (``c_i = <l_i, g>``).
        normalize: ``'softmax'`` over all positions (maps sum to 1) or elementwise ``'sigmoid'``.

    The forward returns ``(attended (B, dim), map (B, H, W))``: the attended vector and the normalised
    attention map, which forward hooks (:func:`capture_attention`) read as the second element of that tuple.
    """

    def __init__(self, dim: int, compatibility: str = "pc", normalize: str = "softmax") -> None:
        super().__init__()
        self.dim = dim
        self.compatibility = check_choice("compatibility", compatibility, COMPATIBILITIES)
        self.normalize = check_choice("normalize", normalize, NORMALIZATIONS)
        # 'pc': the learned vector u of the paper, a bias-free 1x1 convolution to one channel.
        self.op = nn.Conv2d(dim, 1, kernel_size=1, bias=False) if compatibility == "pc" else None

    def compatibility_scores(self, local: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
        """Compatibility ``c`` of each position, shape (B, H, W)."""
        if self.op is not None:
            # u . (l_i + g) = u . l_i + u . g: the second term is one number per image, so the
            # (B, C, H, W) sum l + g never needs to exist.
            weight = self.op.weight.view(1, -1)
            c = self.op(local).squeeze(1)
            return c + (glob @ weight.t().to(glob.dtype)).view(-1, 1, 1)
        return torch.einsum("bchw,bc->bhw", local, glob)

    def forward(self, local: torch.Tensor, glob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(attended (B, C), attention map (B, H, W))``."""
        c = self.compatibility_scores(local, glob)
        b, h, w = c.shape
        if self.normalize == "softmax":
            a = torch.softmax(c.reshape(b, h * w).float(), dim=1).to(local.dtype)
        else:
            a = torch.sigmoid(c.reshape(b, h * w))
        # (B, C, HW) @ (B, HW, 1): a batched matrix-vector product that works for NCHW and channels_last.
        attended = torch.bmm(local.flatten(2), a.unsqueeze(-1)).squeeze(-1)
        if self.normalize == "sigmoid":
            attended = attended / (h * w)
        return attended, a.view(b, h, w)


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the normalised attention maps of ``model`` during a forward pass.

    Yields a list that, after each forward of ``model`` (``model(x)`` or ``model.forward_features(x)``)
    inside the ``with`` block, holds that batch's maps as float tensors of shape (B, H_s, W_s), shallow
    to deep. Each forward replaces the previous contents. The hooks are removed on exit, so nothing is
    kept between batches outside the block.

    Args:
        model: A GalaxyAttnVGG (or a module holding one) with its attention estimators.

    Example::

        with capture_attention(model) as maps:
            logits = model(images)
        a1, a2, a3 = maps
    """
    if isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile(model)
        raise ValueError(
            "capture_attention needs the eager model: a torch.compile'd one skips the hooks and would give "
            "no maps. Pass the module you compiled (compiled._orig_mod)."
        )
    estimators = [m for m in model.modules() if isinstance(m, AttentionEstimator)]
    if not estimators:
        raise ValueError(
            f"{type(model).__name__} has no AttentionEstimator submodules; capture_attention needs a "
            "galaxy_attn_vgg model created with attention=True."
        )
    maps: list[torch.Tensor] = []
    pending: dict[int, torch.Tensor] = {}

    def make_hook(index: int):
        def hook(module: nn.Module, args: tuple, output: tuple[torch.Tensor, torch.Tensor]) -> None:
            pending[index] = output[1].detach().float()
            if len(pending) == len(estimators):
                maps[:] = [pending[i] for i in range(len(estimators))]
                pending.clear()

        return hook

    handles = [est.register_forward_hook(make_hook(i)) for i, est in enumerate(estimators)]
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()
        pending.clear()
