"""Batches in, probabilities out: the producer thread (or DataLoader workers) and the model's inference.

A producer decodes batches (:class:`.batches.BatchDecoder`) ahead of the model and hands them over through
a bounded queue; :class:`Engine` normalises each uint8 batch on the device and runs the model, with
optional D4 test-time augmentation (:mod:`..tta`) and the attention maps
(:func:`..attention.capture_attention`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..attention import capture_attention
from ..tta import d4_probs, mirror_permutation
from .batches import BatchDecoder
from .model import LoadedModel
from .table import class_columns

if TYPE_CHECKING:
    from .options import PredictOptions

__all__ = ["Engine", "iterate_batches"]


def _threaded(decoder: BatchDecoder, prefetch: int, pin: bool = False) -> Iterator[dict[str, Any]]:
    """Yield decoder batches produced by a background thread through a bounded queue (``pin``: in
    page-locked memory, for asynchronous copies to a GPU)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for b in range(len(decoder)):
                item = decoder[b]
                if pin and item["x"] is not None:
                    item["x"] = item["x"].pin_memory()
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # hand the failure to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name="galaxy-attn-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def iterate_batches(
    decoder: BatchDecoder, num_workers: int, prefetch: int, pin: bool = False
) -> Iterator[dict[str, Any]]:
    """Decoded batches in order: from one thread, or from ``num_workers`` processes (one batch each)."""
    if num_workers <= 0:
        yield from _threaded(decoder, prefetch, pin)
        return
    loader = torch.utils.data.DataLoader(
        decoder,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        prefetch_factor=max(1, prefetch),
        pin_memory=pin,
    )
    yield from loader


class Engine:
    """Runs the model on decoded batches: class probabilities, TTA statistics and attention maps."""

    def __init__(
        self,
        loaded: LoadedModel,
        opts: PredictOptions,
        device: torch.device,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        self.loaded = loaded
        self.opts = opts
        self.device = device
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.model = loaded.model.to(device).eval()
        if opts.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.columns = class_columns(loaded.label_names)
        self.mirror_perm = mirror_permutation(len(loaded.label_names), opts.mirror_label_swaps, device)

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        if self.opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.opts.precision)
        if dtype is not None:
            with torch.autocast(self.device.type, dtype=dtype):
                logits = self.model(x)
        else:
            logits = self.model(x)
        return logits.float().softmax(dim=1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 pixels -> normalised float (B, 3, S, S) on the device: the ops of timm's
        ToTensor + Normalize, in their order (the same floats); NHWC in memory for channels_last."""
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        x = x.sub_(self.mean).div_(self.std)
        return x if self.opts.channels_last else x.contiguous()

    def _d4(self, x: torch.Tensor, want_maps: bool, captured: list, maps: list) -> dict[str, torch.Tensor]:
        """Mean, spread and agreement of the 8 D4 views; the identity view's maps into ``maps``."""

        def probs_of(view: torch.Tensor) -> torch.Tensor:
            p = self._probs(view)
            if want_maps and not maps:  # the identity view's maps (the first forward)
                maps.extend(m.cpu() for m in captured)
            return p

        stack = d4_probs(probs_of, x, self.mirror_perm)  # (8, B, C)
        mean, std = stack.mean(0), stack.std(0, correction=0)
        agree = (stack.argmax(-1) == mean.argmax(-1)).float().mean(0)
        return {"probs": mean, "std": std, "agreement": agree}

    @torch.inference_mode()
    def run(self, x: torch.Tensor, want_maps: bool) -> dict[str, Any]:
        """Probabilities (and, with ``want_maps``, attention maps) of a (B, S, S, 3) uint8 batch."""
        x = self.normalise(x)
        maps: list[torch.Tensor] = []
        with capture_attention(self.model) if want_maps else contextlib.nullcontext([]) as captured:
            if self.opts.tta == "d4":
                out = self._d4(x, want_maps, captured, maps)
            else:
                out = {"probs": self._probs(x)}
                if want_maps:
                    maps = [m.cpu() for m in captured]
        out = {k: v.cpu() for k, v in out.items()}
        out["maps"] = maps
        return out
