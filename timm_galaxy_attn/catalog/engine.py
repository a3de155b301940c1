"""Batches in, probabilities out: decoding and the model's inference, overlapped.

:class:`Engine` normalises a uint8 batch on the device (:func:`.geometry.normalize_batch`) and runs the
model, with optional D4 test-time augmentation (:mod:`..tta`) and the attention maps
(:func:`..attention.capture_attention`). :func:`predicted_batches` feeds it decoded batches
(:class:`.batches.BatchDecoder`) in one of two ways:

* On the CPU (no DataLoader workers): ``P`` pipelines, each a thread that decodes a whole batch and runs
  it through its own copy of the model, with ``cores // P`` intra-op threads each (:func:`cpu_pipelines`).
  Decoding and the forward then share the cores without a producer preempting the threads of an
  intra-op parallel region (which stalls all of them at its barrier). ``benchmarks/predict.py`` measures
  it against the bare forward.
* On a GPU, or with ``num_workers`` > 0: a producer (a thread, or DataLoader worker processes) decodes
  ahead through a bounded queue, in page-locked memory on CUDA, and the model runs in the calling thread.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch

from ..attention import capture_attention
from ..tta import d4_probs, mirror_permutation
from .batches import BatchDecoder
from .embed import WithEmbedding
from .geometry import normalize_batch
from .model import LoadedModel
from .table import class_columns

if TYPE_CHECKING:
    from .options import PredictOptions

__all__ = ["Engine", "cpu_pipelines", "iterate_batches", "predicted_batches"]


class _Producer(threading.Thread):
    """Decodes the batches of ``decoder`` into a bounded queue (``pin``: in page-locked memory, for
    asynchronous copies to a GPU); a failure is queued for the consumer; stops when ``stop`` is set."""

    DONE = object()

    def __init__(self, decoder: BatchDecoder, prefetch: int, pin: bool) -> None:
        super().__init__(name="galaxy-attn-decode", daemon=True)
        self.decoder, self.pin = decoder, pin
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self.stop = threading.Event()

    def _put(self, item: Any) -> bool:
        """Queue ``item``, waiting while the queue is full; False once the consumer has stopped."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for b in range(len(self.decoder)):
                item = self.decoder[b]
                if self.pin and item["x"] is not None:
                    item["x"] = item["x"].pin_memory()
                if not self._put(item):
                    return
            self.queue.put(self.DONE)
        except BaseException as exc:  # hand the failure to the consumer
            self.queue.put(exc)


def _threaded(decoder: BatchDecoder, prefetch: int, pin: bool = False) -> Iterator[dict[str, Any]]:
    """Yield decoder batches produced by a background thread (:class:`_Producer`)."""
    producer = _Producer(decoder, prefetch, pin)
    producer.start()
    try:
        while (item := producer.queue.get()) is not _Producer.DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.stop.set()
        producer.join(timeout=5)


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
        self.stats = {"mean": tuple(mean), "std": tuple(std)}  # what normalize_batch reads
        self.model = loaded.model.to(device).eval()
        if opts.embeddings:  # one forward gives (logits, embedding) (catalog.embed)
            self.model = WithEmbedding(self.model).eval()
        if opts.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if opts.compile:  # each pipeline's replica is a copy of the compiled module (recompiles quickly)
            self.model = torch.compile(self.model)
        self.columns = class_columns(loaded.label_names)
        self.mirror_perm = mirror_permutation(len(loaded.label_names), opts.mirror_label_swaps, device)

    def _probs(self, x: torch.Tensor, embeddings: list[torch.Tensor]) -> torch.Tensor:
        """Probabilities of ``x``; with embeddings on, the first call's embedding goes into ``embeddings``."""
        if self.opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.opts.precision)
        with torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext():
            out = self.model(x)
        if self.opts.embeddings:
            out, embedding = out
            if not embeddings:  # the first forward: the image itself (with D4, the identity view)
                embeddings.append(embedding.float())
        return out.float().softmax(dim=1)

    def _normalized(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 pixels -> normalised float (B, 3, S, S) on the device (NHWC in memory for
        channels_last)."""
        x = normalize_batch(x.to(self.device, non_blocking=True).permute(0, 3, 1, 2), self.stats)
        return x if self.opts.channels_last else x.contiguous()

    def _d4(
        self, x: torch.Tensor, want_maps: bool, captured: list, maps: list, embeddings: list
    ) -> dict[str, torch.Tensor]:
        """Mean, spread and agreement of the 8 D4 views; the identity view's maps into ``maps`` (and its
        embedding into ``embeddings``)."""

        def probs_of(view: torch.Tensor) -> torch.Tensor:
            p = self._probs(view, embeddings)
            if want_maps and not maps:  # the identity view's maps (the first forward)
                maps.extend(m.cpu() for m in captured)
            return p

        stack = d4_probs(probs_of, x, self.mirror_perm)  # (8, B, C)
        mean, std = stack.mean(0), stack.std(0, correction=0)
        agree = (stack.argmax(-1) == mean.argmax(-1)).float().mean(0)
        return {"probs": mean, "std": std, "agreement": agree}

    @torch.inference_mode()
    def run(self, x: torch.Tensor, want_maps: bool) -> dict[str, Any]:
        """Probabilities (with ``want_maps`` attention maps, with embeddings on ``embedding``) of a
        (B, S, S, 3) uint8 batch."""
        x = self._normalized(x)
        maps: list[torch.Tensor] = []
        embeddings: list[torch.Tensor] = []
        with capture_attention(self.model) if want_maps else contextlib.nullcontext([]) as captured:
            if self.opts.tta == "d4":
                out = self._d4(x, want_maps, captured, maps, embeddings)
            else:
                out = {"probs": self._probs(x, embeddings)}
                if want_maps:
                    maps = [m.cpu() for m in captured]
        if embeddings:
            out["embedding"] = embeddings[0]
        out = {k: v.cpu() for k, v in out.items()}
        out["maps"] = maps
        return out

    def replica(self) -> Engine:
        """This engine with its own copy of the model (for a pipeline thread: its own attention hooks)."""
        twin = copy.copy(self)
        twin.model = copy.deepcopy(self.model)
        return twin


def cpu_pipelines(cores: int | None = None) -> tuple[int, int]:
    """(pipelines, intra-op threads each) for a CPU run over ``cores`` (default: torch's thread count).

    Up to 4 pipelines of ``cores // pipelines`` threads: small batches of a small CNN use many threads
    poorly, several independent forwards use them well (``benchmarks/predict.py`` measures it).
    """
    cores = max(1, cores or torch.get_num_threads())
    pipelines = min(cores, 4)
    return pipelines, max(1, cores // pipelines)


def _pipelined(
    decoder: BatchDecoder, engine: Engine, want_maps: bool, pipelines: int, threads: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(batch, result) in order, each batch decoded and predicted by one of ``pipelines`` threads."""
    local = threading.local()

    def work(b: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if not hasattr(local, "engine"):
            local.engine = engine.replica()
        batch = decoder[b]
        return batch, local.engine.run(batch["x"], want_maps) if batch["x"] is not None else None

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # pool threads take it up at their first op
    pending: collections.deque = collections.deque()
    try:
        with ThreadPoolExecutor(pipelines, thread_name_prefix="galaxy-attn") as pool:
            try:
                for b in range(len(decoder)):
                    pending.append(pool.submit(work, b))
                    if len(pending) > 2 * pipelines:  # a bounded look-ahead
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
    finally:
        torch.set_num_threads(previous)


def predicted_batches(
    decoder: BatchDecoder, engine: Engine, want_maps: bool, num_workers: int = 0, prefetch: int = 2
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(decoded batch, engine result or None where no row decoded) in order (module doc)."""
    if engine.device.type == "cpu" and num_workers <= 0:
        yield from _pipelined(decoder, engine, want_maps, *cpu_pipelines())
        return
    pin = engine.device.type == "cuda"
    for batch in iterate_batches(decoder, num_workers, prefetch, pin):
        yield batch, engine.run(batch["x"], want_maps) if batch["x"] is not None else None
