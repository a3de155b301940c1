"""Per-input checks of the catalogue tool that never stop a run.

* Any failure to decode an input (PIL's ``DecompressionBombError`` on a huge image, a codec bug, memory...)
  becomes the message of that input's ``error`` column.
* An image much smaller than the pixels the model's crop expects (the crop would be upsampled more than
  :data:`MAX_UPSAMPLING` times) still gets a prediction, and a ``warning`` in its row.
"""

from __future__ import annotations

from PIL import Image

__all__ = ["MAX_UPSAMPLING", "decode_failure_message", "small_input_warning"]

MAX_UPSAMPLING = 2.0


def decode_failure_message(exc: BaseException) -> str:
    """The ``error`` text for an input whose decoding raised ``exc``."""
    if isinstance(exc, Image.DecompressionBombError):
        return (
            f"image too large to decode safely ({exc}); if it is genuine, raise PIL.Image.MAX_IMAGE_PIXELS "
            f"(now {Image.MAX_IMAGE_PIXELS}) or cut it into cutouts"
        )
    return f"cannot decode: {type(exc).__name__}: {exc}"


def small_input_warning(height: int, width: int, input_px: int, crop_pct: float) -> str | None:
    """A warning when the crop the model sees (``crop_pct`` of the shorter side, resized to ``input_px``)
    would be upsampled more than :data:`MAX_UPSAMPLING` times; else None."""
    crop = crop_pct * min(height, width)
    factor = input_px / max(crop, 1e-9)
    if factor <= MAX_UPSAMPLING:
        return None
    return (
        f"small input: {height}x{width} px; the model's crop is its central {crop:.0f} px, upsampled "
        f"{factor:.1f}x to {input_px} px (images of at least {input_px / (crop_pct * MAX_UPSAMPLING):.0f} px "
        "per side avoid this); the prediction may be unreliable"
    )
