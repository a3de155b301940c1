"""D4 test-time augmentation: the 8 rotations and mirror images of a batch, with the mirror label swap.

A galaxy has no preferred orientation, so the class probabilities of its 8 D4 views can be averaged. A mirror
image turns a clockwise spiral into an anticlockwise one: the probabilities of a mirrored view are permuted
back (``labels.MIRROR_LABEL_SWAPS``) before averaging. Used by the catalogue, the benchmarks and the
transformers model (``GalaxyAttnConfig.tta = "d4"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

__all__ = ["TTA_MODES", "d4_probs", "d4_views", "mirror_permutation"]

TTA_MODES = ("none", "d4")


def d4_views(x: torch.Tensor) -> list[tuple[torch.Tensor, bool]]:
    """The 8 rotations and mirror images of a batch, identity first.

    Args:
        x: A (B, C, H, W) batch.

    Returns:
        Eight (view, is a mirror image) pairs: the 4 rotations of ``x``, then the 4 of its mirror image.
    """
    flipped = torch.flip(x, dims=(3,))
    return [(torch.rot90(x, k, dims=(2, 3)), False) for k in range(4)] + [
        (torch.rot90(flipped, k, dims=(2, 3)), True) for k in range(4)
    ]


def mirror_permutation(
    num_classes: int, swaps: Mapping[int, int] | None, device: torch.device | str | None = None
) -> torch.Tensor:
    """The index that maps a mirrored view's class probabilities back to the original's classes.

    Args:
        num_classes: Number of classes.
        swaps: Classes that trade places under a mirror (``labels.MIRROR_LABEL_SWAPS[dataset]``); None: none.
        device: Device of the index.
    """
    swaps = swaps or {}
    return torch.tensor([int(swaps.get(j, j)) for j in range(num_classes)], device=device)


def d4_probs(
    probs_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, perm: torch.Tensor
) -> torch.Tensor:
    """The class probabilities of the 8 D4 views of a batch; their mean over dim 0 is the TTA prediction.

    Args:
        probs_of: The model's class probabilities (B, C) of a (B, C_in, H, W) batch.
        x: The (B, C_in, H, W) batch.
        perm: :func:`mirror_permutation` of the classes: mirrored views' probabilities are permuted back.

    Returns:
        (8, B, C) probabilities, in :func:`d4_views` order.
    """
    out = []
    for view, mirrored in d4_views(x):
        p = probs_of(view)
        out.append(p[:, perm] if mirrored else p)
    return torch.stack(out)
