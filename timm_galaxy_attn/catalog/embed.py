"""Embeddings in a catalogue (``galaxy-attn embed``): the classifier's input of every galaxy.

The embedding of an image is ``model.forward_head(model.forward_features(x), pre_logits=True)``, the vector
the classifier (``model.get_classifier()``) turns into the logits: for the galaxy_attn_vgg models the
concatenation of the three attended vectors ``[g_1, g_2, g_3]``, for other timm models their pooled
features. :class:`WithEmbedding` runs a model so that one forward gives both, and
:func:`check_embedding` makes sure, once per run, that the split reproduces the model's own forward.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["EMBEDDING_OF", "WithEmbedding", "check_embedding"]

EMBEDDING_OF = "forward_head(forward_features(x), pre_logits=True)"


class WithEmbedding(nn.Module):
    """``model`` as a module whose forward returns ``(logits, embedding)`` (module doc).

    Args:
        model: a timm-style model with ``forward_features``, ``forward_head(..., pre_logits=True)`` and
            ``get_classifier()``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return self.model.get_classifier()(embedding), embedding


def check_embedding(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """The embedding size of ``model``, after checking on a random image that the classifier applied to
    the embedding gives the model's own logits (else a ValueError: the embedding would not be the
    classifier's input).

    Args:
        model: the catalogue's model (eval mode).
        input_size: (channels, height, width) of its input.
    """
    name = type(model).__name__
    if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")):
        raise ValueError(
            f"{name} has no forward_features / forward_head / get_classifier: embeddings need a timm model."
        )
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, *input_size, generator=generator).to(device)
    with torch.inference_mode():
        logits, embedding = WithEmbedding(model)(x)
        reference = model(x)
    if (
        embedding.ndim != 2
        or reference.shape != logits.shape
        or not torch.allclose(logits, reference, rtol=1e-4, atol=1e-4)
    ):
        raise ValueError(
            f"{name}: get_classifier() applied to {EMBEDDING_OF} does not give the model's logits, so that "
            "vector is not the classifier's input; embeddings are not supported for this model."
        )
    return int(embedding.shape[1])
