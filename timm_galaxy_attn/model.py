"""GalaxyAttnVGG: the attention CNN (VGG-att3)-concat-pc of Jetley et al. (2018) for galaxy morphology.

Papers:
* `Learn to Pay Attention` - Jetley, Lord, Lee, Torr, ICLR 2018 - https://arxiv.org/abs/1804.02391
* `Galaxy Classification with an Attentional Convolutional Neural Network` - J. Misquith, 2023
  (the network trained on Galaxy10 at 32x32, 83.28% test accuracy).

Layout (paper widths; ``galaxy_attn_vgg_small`` halves every width, ``galaxy_attn_vgg_tiny_s4`` quarters
them):

    block1  2 x conv 64    full resolution (no pooling in blocks 1-3)
    block2  2 x conv 128
    block3  3 x conv 256   -> l1 (conv 7), projected to 512 channels by a bias-free 1x1 conv
    maxpool, block4  3 x conv 512 -> l2 (conv 10) at H/2
    maxpool, block5  3 x conv 512 -> l3 (conv 13) at H/4
    maxpool, block6  2 x (conv 512 + maxpool) -> H/32
    global average pool + Linear -> g (512)
    three attention estimators (l_i, g) -> g_1, g_2, g_3; classifier: Linear on [g_1, g_2, g_3]

Every conv is 3x3 + BatchNorm + ReLU. The reference code turns the H/32 map into ``g`` with a dense
convolution whose kernel is ``image_size / 32``; here it is a global average pool and a Linear, which is
the same layer at 32x32 input and keeps the parameter count independent of the input size.

A property of the paper's choice ('pc' compatibility with softmax), kept because it is the paper's
network: ``u . (l_i + g) = u . l_i + u . g`` and the second term, equal at every position, cancels in the
softmax. So ``g`` (and block 6 that feeds it) changes neither the maps nor the logits and gets no
gradient; the maps depend on the local features alone. ``compatibility='dp'`` or ``normalize='sigmoid'``
make ``g`` matter (see tests/test_model.py::test_pc_softmax_makes_g_irrelevant).

Written for timm-galaxy-attn (Apache-2.0).
"""

# No `from __future__ import annotations`: torch.fx copies forward's annotations into generated code, which
# TorchScript then has to read (timm's FX + TorchScript test), and strings there are not types.
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import build_model_with_cfg, register_model
from timm.models._features import feature_take_indices

from .attention import COMPATIBILITIES, NORMALIZATIONS, AttentionEstimator, check_choice
from .pretrained import (
    architecture_cfg,
    check_has_weights,
    check_not_retired,
    default_cfgs,  # noqa: F401  (register_model reads this module's default_cfgs)
    missing_weights_error,
    shipped_model_args,
)
from .vote_head import VoteHead, add_vote_head_weights

__all__ = [
    "CONFIG_ARCHITECTURES",
    "MODEL_PRESETS",
    "GalaxyAttnVGG",
    "config_architecture",
    "init_weights",
    "preset_widths",
]

ATTN_POSITIONS = ("before", "after")
STEM_STRIDES = (1, 2, 4)
# Convs per block and the paper's widths (blocks 1-6).
DEPTHS = (2, 2, 3, 3, 3, 2)
WIDTHS = (64, 128, 256, 512, 512, 512)
SMALL_WIDTHS = tuple(w // 2 for w in WIDTHS)
TINY_WIDTHS = tuple(w // 4 for w in WIDTHS)


def _is_tracing() -> bool:
    """True while torch.fx traces the model: its input checks need concrete shapes, which proxies lack."""
    fx = torch.fx._symbolic_trace
    return getattr(fx, "is_fx_symbolic_tracing", fx.is_fx_tracing)()


class ConvBnAct(nn.Sequential):
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm and in-place ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True)


def _make_block(in_chs: int, out_chs: int, depth: int, strides: Sequence[int] = (), pool_each: bool = False):
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(
            ConvBnAct(in_chs if i == 0 else out_chs, out_chs, strides[i] if i < len(strides) else 1)
        )
        if pool_each:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def init_weights(module: nn.Module, classifier: bool = False, init: Any = nn.init) -> None:
    """GalaxyAttnVGG's initialisation of one module (others are left alone); biases start at 0.

    3x3 convs: He normal (fan_out, ReLU); 1x1 convs (projector, attention vectors u) and Linear layers: He
    normal for a linear layer, except the classifier: N(0, 0.01); BatchNorm: the identity.

    Args:
        module: The module to initialise (Conv2d, BatchNorm2d or Linear).
        classifier: ``module`` is the classifier.
        init: The namespace of init functions: ``torch.nn.init``, or ``transformers.initialization``, which
            leaves the weights a checkpoint loaded untouched.
    """
    if isinstance(module, nn.Conv2d):
        if module.kernel_size == (1, 1):
            init.kaiming_normal_(module.weight, nonlinearity="linear")
        else:
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        init.ones_(module.weight)
        init.zeros_(module.bias)
        init.zeros_(module.running_mean)
        init.ones_(module.running_var)
        init.zeros_(module.num_batches_tracked)
    elif isinstance(module, nn.Linear):
        if classifier:
            init.normal_(module.weight, mean=0.0, std=0.01)
        else:
            init.kaiming_normal_(module.weight, nonlinearity="linear")
        init.zeros_(module.bias)


def _check_args(
    widths: Sequence[int], compatibility: str, normalize: str, attn_position: str, stem_stride: int
) -> tuple[int, ...]:
    """Validate GalaxyAttnVGG's options; return the widths as a tuple of ints."""
    check_choice("compatibility", compatibility, COMPATIBILITIES)
    check_choice("normalize", normalize, NORMALIZATIONS)
    check_choice("attn_position", attn_position, ATTN_POSITIONS)
    if stem_stride not in STEM_STRIDES:
        allowed = ", ".join(map(str, STEM_STRIDES))
        raise ValueError(f"stem_stride={stem_stride!r} is not supported; choose one of {allowed}.")
    widths = tuple(int(w) for w in widths)
    if len(widths) != 6 or not widths[3] == widths[4] == widths[5]:
        raise ValueError(f"widths must be 6 numbers with widths[3] == widths[4] == widths[5], got {widths}")
    return widths


def _feature_info(widths: tuple[int, ...], stem_stride: int, attn_position: str) -> list[dict[str, Any]]:
    """timm's feature_info: l1, l2, l3 and the final H/32 map, with their channels and reductions."""
    r1 = stem_stride * (2 if attn_position == "after" else 1)
    return [
        dict(num_chs=widths[2], reduction=r1, module="stages.2"),
        dict(num_chs=widths[3], reduction=2 * r1, module="stages.3"),
        dict(num_chs=widths[4], reduction=4 * r1, module="stages.4"),
        dict(num_chs=widths[5], reduction=32 * stem_stride, module="stages.5"),
    ]


class GalaxyAttnVGG(nn.Module):
    """VGG with three attention estimators over conv 7, 10 and 13 ("VGG-att3-concat").

    Args:
        num_classes: Number of classes (0 gives no classifier: the model returns the pre-logits).
        in_chans: Input channels.
        widths: Channels of blocks 1-6; blocks 4, 5 and 6 must have the same width (the attention dim).
        compatibility: ``'pc'`` (parametrised, the paper's) or ``'dp'`` (dot product).
        normalize: ``'softmax'`` (the paper's) or ``'sigmoid'`` attention normalisation.
        attn_position: ``'before'`` (the paper's: estimators see conv outputs before max-pooling) or
            ``'after'`` (they see the max-pooled outputs).
        drop_rate: Dropout before the classifier.
        stem_stride: 1 (the paper) or 2 / 4: the first one / two convs stride by 2, so that larger images
            cost what a 2x / 4x smaller one costs at stride 1. The parameters do not change.
        attention: False builds the ablation without attention: the classifier sees ``g`` alone.
        vote_head: Add the Galaxy Zoo 2 vote-fraction head (``timm_galaxy_attn.vote_head``), read by
            :meth:`forward_questions`; ``forward`` and ``forward_head`` are unchanged.
    """

    # A constant for TorchScript, so that the ablation (no estimators) compiles only its own branch.
    __constants__ = ["attention"]

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        widths: Sequence[int] = WIDTHS,
        compatibility: str = "pc",
        normalize: str = "softmax",
        attn_position: str = "before",
        drop_rate: float = 0.0,
        stem_stride: int = 1,
        attention: bool = True,
        vote_head: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(f"GalaxyAttnVGG got unexpected keyword arguments: {sorted(kwargs)}")
        widths = _check_args(widths, compatibility, normalize, attn_position, stem_stride)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.widths = widths
        self.compatibility = compatibility
        self.normalize = normalize
        self.attn_position = attn_position
        self.stem_stride = stem_stride
        self.attention = attention
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        dim = widths[5]

        stem_strides = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[stem_stride]
        chs = (in_chans, *widths)
        self.stages = nn.Sequential(
            *[
                _make_block(chs[i], chs[i + 1], DEPTHS[i], stem_strides if i == 0 else (), pool_each=i == 5)
                for i in range(6)
            ]
        )
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.dense = nn.Linear(dim, dim)  # turns the pooled H/32 map into the global feature g

        if attention:
            self.projector = nn.Conv2d(widths[2], dim, kernel_size=1, bias=False)
            self.attn1 = AttentionEstimator(dim, compatibility, normalize)
            self.attn2 = AttentionEstimator(dim, compatibility, normalize)
            self.attn3 = AttentionEstimator(dim, compatibility, normalize)
            self.num_features = self.head_hidden_size = 3 * dim
        else:
            self.projector = self.attn1 = self.attn2 = self.attn3 = None
            self.num_features = self.head_hidden_size = dim
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.vote_head = VoteHead(self.num_features) if vote_head else None

        self.feature_info = _feature_info(widths, stem_stride, attn_position)
        self._init_weights()

    def _init_weights(self) -> None:
        """:func:`init_weights` on the convs, the dense layer g, the attention vectors u and the classifier
        (the 1x1 projector keeps PyTorch's default)."""
        estimators = (self.attn1, self.attn2, self.attn3)
        for m in (*self.stages.modules(), self.dense, *(e.op for e in estimators if e is not None)):
            if m is not None:
                init_weights(m)
        init_weights(self.fc, classifier=True)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^stages\.0", blocks=r"^stages\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` (0 removes it)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        init_weights(self.fc, classifier=True)

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        """Eager-mode input checks with clear messages (skipped when scripted, FX-traced or exported)."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            hint = ""
            if x.ndim == 4 and x.shape[1] in (1, 4) and self.in_chans == 3:
                hint = (
                    " Convert grayscale images to RGB (repeat the channel) and drop the alpha channel of "
                    "RGBA images (PIL: image.convert('RGB')), or create the model with in_chans="
                    f"{x.shape[1]} to train on {x.shape[1]}-channel data."
                )
            raise ValueError(
                f"{type(self).__name__} expects a (batch, {self.in_chans}, height, width) tensor, got shape "
                f"{tuple(x.shape)}.{hint}"
            )
        min_size = 32 * self.stem_stride
        if x.shape[-1] < min_size or x.shape[-2] < min_size:
            raise ValueError(
                f"Input of {x.shape[-2]}x{x.shape[-1]} px is too small: with stem_stride={self.stem_stride} "
                f"the network downsamples by {min_size}, so images must be at least {min_size}x{min_size} px."
            )

    def _local_and_final(self, x: torch.Tensor, stop_after: int = 3) -> list[torch.Tensor]:
        """Run the backbone; return [l1, l2, l3, final H/32 map], stopping after feature ``stop_after``."""
        if not torch.jit.is_scripting():
            if not _is_tracing():
                self._check_input(x)
        after = self.attn_position == "after"
        feats: list[torch.Tensor] = []
        running = True
        # One loop over the stages (TorchScript unrolls it): stages 3-5 each start with a max-pool, and the
        # input of that pool is l1, l2, l3 (or its output, attn_position='after').
        for i, stage in enumerate(self.stages):
            if running and i >= 3:
                pooled = self.pool(x)
                feats.append(pooled if after else x)
                x = pooled
                running = len(feats) <= stop_after
            if running:
                if self.grad_checkpointing and not torch.jit.is_scripting() and x.requires_grad:
                    x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
                else:
                    x = stage(x)
        if running:
            feats.append(x)
        return feats

    def _global(self, final: torch.Tensor) -> torch.Tensor:
        return self.dense(F.adaptive_avg_pool2d(final, 1).flatten(1))

    def _attend(self, feats: list[torch.Tensor]) -> torch.Tensor:
        l1, l2, l3, final = feats
        g = self._global(final)
        if not self.attention:
            return g
        g1, _ = self.attn1(self.projector(l1), g)
        g2, _ = self.attn2(l2, g)
        g3, _ = self.attn3(l3, g)
        return torch.cat((g1, g2, g3), dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the classifier's input: ``[g_1, g_2, g_3]`` (B, 3 * dim), or ``g`` without attention."""
        return self._attend(self._local_and_final(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.unused
    def forward_questions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-question logits ``{question: (B, answers)}`` of the vote head from forward_features' output."""
        if self.vote_head is None:
            raise RuntimeError("This model has no vote head: create it with vote_head=True.")
        return self.vote_head(self.head_drop(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Forward that also returns the feature maps l1, l2, l3 and the final H/32 map (indices 0-3).

        Args:
            x: Input images (B, C, H, W).
            indices: Feature maps to return: the last n (int) or these indices (list); None: all.
            norm: Unused (the network has no final norm), for timm's API.
            stop_early: Stop the backbone after the last wanted feature map.
            output_fmt: ``'NCHW'`` only.
            intermediates_only: Return the feature maps alone.

        Returns:
            The feature maps, or (the classifier's input, the feature maps).
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r} is not supported; only 'NCHW'.")
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        stop = max_index if (stop_early or intermediates_only) else len(self.feature_info) - 1
        feats = self._local_and_final(x, stop_after=stop)
        intermediates = [feats[i] for i in take_indices]
        if intermediates_only:
            return intermediates
        return self._attend(feats), intermediates

    def prune_intermediate_layers(
        self,
        indices: int | list[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the stages after the last wanted feature map (and the head); return the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for i in range(max_index + 3, 6):  # feature j is produced by stage j + 2
            self.stages[i] = nn.Identity()
        if prune_head:
            self.projector = self.attn1 = self.attn2 = self.attn3 = None
            self.attention = False
            self.dense = nn.Identity()
            self.reset_classifier(0)
        return take_indices


# The GalaxyAttnVGG options each registered architecture presets (its model function's defaults).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "galaxy_attn_vgg": {},
    "galaxy_attn_vgg_small": dict(widths=SMALL_WIDTHS),
    "galaxy_attn_vgg_small_s4": dict(widths=SMALL_WIDTHS, stem_stride=4),
    "galaxy_attn_vgg_tiny_s4": dict(widths=TINY_WIDTHS, stem_stride=4),
}
# The architectures a saved config.json names: those whose only preset is the widths. The others are saved as
# galaxy_attn_vgg_small with their presets in model_args, which timm and transformers both read back.
CONFIG_ARCHITECTURES: tuple[str, ...] = tuple(a for a, p in MODEL_PRESETS.items() if set(p) <= {"widths"})


def config_architecture(name: str) -> str:
    """The architecture a saved config.json names for the registered model ``name`` (see above)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"{name!r} is not a GalaxyAttnVGG model; choose one of {', '.join(MODEL_PRESETS)}.")
    return name if name in CONFIG_ARCHITECTURES else "galaxy_attn_vgg_small"


def preset_widths(name: str) -> tuple[int, ...]:
    """The widths the registered model ``name`` builds when none are given."""
    return tuple(MODEL_PRESETS[name].get("widths", WIDTHS))


def _create_galaxy_attn_vgg(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> GalaxyAttnVGG:
    """Build the registered model ``variant``: its presets (``MODEL_PRESETS``), with pretrained weights the
    options they were trained with (``shipped_model_args``), overridden by ``kwargs``. Without weights or a
    tag, the architecture's own config (``architecture_cfg``: galaxy_attn_vgg at the paper's 32 px)."""
    check_not_retired(variant, kwargs)
    if pretrained:
        check_has_weights(variant, kwargs)
    named = isinstance(kwargs.get("pretrained_cfg"), str)  # a tag in the name: its network, weights or not
    trained_with = shipped_model_args(variant, kwargs) if pretrained or named else {}
    if not (pretrained or kwargs.get("pretrained_cfg")):
        kwargs["pretrained_cfg"] = architecture_cfg(variant)  # not its default tag's (128 px for the paper's)
    kwargs = {**MODEL_PRESETS[variant], **trained_with, **kwargs}
    try:
        return build_model_with_cfg(
            GalaxyAttnVGG,
            variant,
            pretrained,
            feature_cfg=dict(feature_cls="getter", out_indices=(0, 1, 2, 3)),
            pretrained_filter_fn=add_vote_head_weights,  # vote_head=True: the head beside the weights
            **kwargs,
        )
    except Exception as error:
        offline = missing_weights_error(variant, kwargs, error) if pretrained else None
        if offline is None:
            raise
        raise offline from error


@register_model
def galaxy_attn_vgg(pretrained: bool = False, **kwargs: Any) -> GalaxyAttnVGG:
    """VGG-att3-concat-pc (Jetley et al. 2018) with the paper's widths (19.9M parameters at 10 classes)."""
    return _create_galaxy_attn_vgg("galaxy_attn_vgg", pretrained, kwargs)


@register_model
def galaxy_attn_vgg_small(pretrained: bool = False, **kwargs: Any) -> GalaxyAttnVGG:
    """The same network with every width halved: a quarter of the compute, for small data and CPUs."""
    return _create_galaxy_attn_vgg("galaxy_attn_vgg_small", pretrained, kwargs)


@register_model
def galaxy_attn_vgg_small_s4(pretrained: bool = False, **kwargs: Any) -> GalaxyAttnVGG:
    """galaxy_attn_vgg_small with a stride-4 stem (the first two convs stride by 2): 128 px inputs for the
    compute of 32 px ones (no weights ship for it)."""
    return _create_galaxy_attn_vgg("galaxy_attn_vgg_small_s4", pretrained, kwargs)


@register_model
def galaxy_attn_vgg_tiny_s4(pretrained: bool = False, **kwargs: Any) -> GalaxyAttnVGG:
    """A quarter of every paper width with the stride-4 stem (128 px): a quarter of galaxy_attn_vgg_small_s4's
    compute, so about three times the epochs in a fixed CPU budget."""
    return _create_galaxy_attn_vgg("galaxy_attn_vgg_tiny_s4", pretrained, kwargs)
