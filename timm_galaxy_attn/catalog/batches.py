"""One batch of inputs decoded: the model's uint8 pixels of the rows that decode, and every row's facts.

:class:`BatchDecoder` is a torch ``Dataset`` of batches (ranges of global indices), so it runs in the
producer thread or in DataLoader worker processes (:mod:`.engine`). Any failure to decode an input
becomes its row's ``error``; inputs too small for the model's crop get a ``warning`` (:mod:`.._input_checks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from .._input_checks import decode_failure_message, small_input_warning
from .decode import InputError, open_image
from .fits import FitsOptions, decode_bands, decode_fits_hdu
from .geometry import ModelPixels
from .heatmaps import display_crop
from .inputs import InputList, Unit

__all__ = ["BatchDecoder"]

_JPEG_SUFFIXES = (".jpg", ".jpeg")


def _row(unit: Unit, index: int, local: int, extra: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    """The facts of item ``local`` of ``unit`` (global ``index``; ``k``-th of the unit's slice)."""
    return {
        "index": index,
        "source": unit.source,
        "row": local if unit.kind == "hdf5" else None,
        "hdu": unit.hdus[local] if unit.kind == "fits" else None,
        "file_label": int(extra["ans"][k]) if "ans" in extra else None,
        "ra": float(extra["ra"][k]) if "ra" in extra else None,
        "dec": float(extra["dec"][k]) if "dec" in extra else None,
        "warning": None,
        "error": None,
    }


class BatchDecoder(torch.utils.data.Dataset):
    """Decodes batch ``b`` (a range of global indices) into the model's uint8 pixels and per-row facts.

    ``x`` is a (B, S, S, 3) uint8 tensor of the rows without an error (the engine normalises it);
    ``displays`` the full-resolution crops for heatmaps. Picklable (HDF5 handles are opened lazily in
    each process), so it also runs in DataLoader workers.
    """

    def __init__(
        self,
        inputs: InputList,
        ranges: list[tuple[int, int]],
        pixels: ModelPixels,
        fits: FitsOptions,
        display_crop_pct: float | None = None,
        model_crop: tuple[int, float] | None = None,
    ) -> None:
        self.inputs = inputs
        self.ranges = ranges
        self.pixels = pixels
        self.fits = fits
        self.display_crop_pct = display_crop_pct
        self.model_crop = model_crop  # (input px, crop_pct): for the small-input warning
        self._h5: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": {}}

    def __len__(self) -> int:
        return len(self.ranges)

    def _h5file(self, path: str):
        import h5py

        if path not in self._h5:
            self._h5[path] = h5py.File(path, "r")
        return self._h5[path]

    def _hdf5_rows(self, unit: Unit, lo: int, hi: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        f = self._h5file(unit.source)
        extra = {
            k: np.asarray(f[k][lo:hi]) for k in ("ans", "ra", "dec") if k in f and len(f[k]) == unit.count
        }
        return np.asarray(f["images"][lo:hi]), extra

    def _decode_unit(self, unit: Unit, local: int, n: int) -> tuple[list[Any], dict[str, np.ndarray]]:
        """Items ``local .. local + n`` of ``unit``: (RGB image, full size) or the InputError of each."""
        if unit.kind == "hdf5":
            try:
                images, extra = self._hdf5_rows(unit, local, local + n)
            except Exception as exc:
                return [InputError(f"unreadable HDF5 rows: {exc}")] * n, {}
            return [(Image.fromarray(im), (im.shape[1], im.shape[0])) for im in images], extra
        decoded: list[Any] = []
        for k in range(n):
            try:
                decoded.append(self._decode_one(unit, local + k))
            except InputError as exc:
                decoded.append(exc)
            except Exception as exc:  # whatever the cause (bombs, codecs...): an error row
                decoded.append(InputError(decode_failure_message(exc)))
        return decoded, {}

    def _decode_one(self, unit: Unit, local: int) -> tuple[Image.Image, tuple[int, int]]:
        if unit.kind == "invalid":
            raise InputError(unit.error)
        if unit.kind == "image":
            jpeg = unit.source.lower().endswith(_JPEG_SUFFIXES)
            if jpeg and self.pixels.jpeg_draft and self.display_crop_pct is None:
                return open_image(unit.source, self.pixels.geometry)
            return open_image(unit.source)
        if unit.kind == "fits":
            rgb = decode_fits_hdu(unit.source, unit.hdus[local], self.fits)
        elif unit.kind == "bands":
            rgb = decode_bands(unit.paths, self.fits)
        else:
            raise AssertionError(unit.kind)
        return Image.fromarray(rgb), (rgb.shape[1], rgb.shape[0])

    def _prepare(self, row: dict[str, Any], image: Any, out: dict[str, list]) -> None:
        """Model pixels, warning and display crop of one decoded item; failures become the row's error."""
        if not isinstance(image, Exception):
            try:
                img, (width, height) = image
                out["pixels"].append(self.pixels(img, (width, height)))
                if self.model_crop is not None:
                    row["warning"] = small_input_warning(height, width, *self.model_crop)
                if self.display_crop_pct is not None:
                    out["displays"].append(display_crop(np.asarray(img), self.display_crop_pct))
            except Exception as exc:
                image = InputError(f"preprocessing failed: {exc}")
        if isinstance(image, Exception):
            row["error"] = str(image)

    def __getitem__(self, b: int) -> dict[str, Any]:
        start, end = self.ranges[b]
        rows: list[dict[str, Any]] = []
        out: dict[str, list] = {"pixels": [], "displays": []}
        index = start
        while index < end:
            unit, local = self.inputs.locate(index)
            n = min(end - index, unit.count - local)
            decoded, extra = self._decode_unit(unit, local, n)
            for k, image in enumerate(decoded):
                row = _row(unit, index + k, local + k, extra, k)
                self._prepare(row, image, out)
                rows.append(row)
            index += n
        x = torch.from_numpy(np.stack(out["pixels"])) if out["pixels"] else None
        return {"range": (start, end), "rows": rows, "x": x, "displays": out["displays"]}
