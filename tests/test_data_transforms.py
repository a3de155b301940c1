"""The one pixel path (equal to timm's eval transform), batch augmentation and the synthetic generator."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import timm
import torch
from PIL import Image

import timm_galaxy_attn  # noqa: F401  (registers the models: their data config is what we use)
from timm_galaxy_attn.catalog import decode
from timm_galaxy_attn.catalog.decode import open_image
from timm_galaxy_attn.catalog.geometry import ModelPixels
from timm_galaxy_attn.data import BatchAugment, make_synthetic_galaxies, normalize_batch, prepare_tensors
from timm_galaxy_attn.data.transforms import eval_transform, train_transform
from timm_galaxy_attn.hf import GalaxyAttnImageProcessor
from timm_galaxy_attn.pretrained import SHIPPED_TAGS

CFG = {
    "input_size": (3, 32, 32),
    "interpolation": "bicubic",
    "crop_pct": 0.5,
    "mean": (0.1, 0.1, 0.1),
    "std": (0.2, 0.2, 0.2),
}


def _split(n=12, size=69):
    rng = np.random.default_rng(0)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    imgs = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    return datasets.Dataset.from_dict({"image": imgs, "label": [i % 10 for i in range(n)]}, features=feats)


@pytest.mark.parametrize("cfg", [CFG, "model"])
def test_prepare_tensors_matches_timm_eval_transform(cfg):
    if cfg == "model":
        cfg = timm.data.resolve_model_data_config(
            timm.create_model("galaxy_attn_vgg_small", pretrained=False)
        )
    ds = _split()
    x, y = prepare_tensors(ds, cfg, image_size=32)
    assert x.dtype == torch.uint8 and x.shape == (12, 3, 32, 32) and y.tolist() == ds["label"]
    tf = eval_transform(cfg, image_size=32)
    ref = torch.stack([tf(ds[i]["image"]) for i in range(len(ds))])
    torch.testing.assert_close(normalize_batch(x, cfg), ref, atol=1e-5, rtol=0)


def _real_images(shared_data, tmp_path) -> list:
    """Three Galaxy10 DECaLS PNGs (256 px) and three gz1_sdss JPEGs (423 px), as files."""
    paths = sorted((shared_data / "galaxy10_decals_examples").glob("*.png"))[:3]
    table = pq.read_table(shared_data / "gz1_sdss" / "data.parquet", columns=["image"]).slice(0, 3)
    for i, image in enumerate(table.column("image").to_pylist()):
        (path := tmp_path / f"gz1_{i}.jpeg").write_bytes(image["bytes"])
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "cfg",
    [
        *SHIPPED_TAGS,
        {"input_size": (3, 69, 69), "interpolation": "bilinear", "crop_pct": 0.875},  # sizes PIL boxes cannot
        {
            "input_size": (3, 48, 64),
            "interpolation": "bicubic",
            "crop_pct": 0.9,
        },  # not square: timm's geometry
    ],
)
def test_every_pixel_path_is_timms_eval_transform(cfg, shared_data, tmp_path):
    if isinstance(cfg, str):
        cfg = timm.models.get_pretrained_cfg(cfg).to_dict()
    config = timm.data.resolve_data_config(pretrained_cfg=cfg)
    timm_tf = timm.data.create_transform(**config)
    paths = _real_images(shared_data, tmp_path)
    images = [Image.open(p).convert("RGB") for p in paths]
    ref = torch.stack([timm_tf(im) for im in images])
    processor = GalaxyAttnImageProcessor.from_pretrained_cfg(cfg)
    assert torch.equal(processor(images)["pixel_values"], ref)  # the transformers image processor
    # the catalogue: files decoded to RGB, ModelPixels, then the engine's NHWC view normalised
    pixels = ModelPixels(config)
    nhwc = torch.from_numpy(np.stack([pixels(open_image(str(p))[0]) for p in paths]))
    assert torch.equal(normalize_batch(nhwc.permute(0, 3, 1, 2), config).contiguous(), ref)
    if config["input_size"][1] != config["input_size"][2]:
        return  # the training paths take square inputs
    assert torch.equal(torch.stack([eval_transform(config)(im) for im in images]), ref)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=2)})
    ds = datasets.Dataset.from_dict({"image": images, "label": [0] * len(images)}, features=feats)
    assert torch.equal(normalize_batch(prepare_tensors(ds, config)[0], config), ref)


def test_jpeg_decoders_agree_and_reject_truncated_files(shared_data, tmp_path, monkeypatch):
    pytest.importorskip("simplejpeg")
    paths = [p for p in _real_images(shared_data, tmp_path) if p.suffix == ".jpeg"]
    fast = [np.asarray(open_image(str(p))[0]) for p in paths]
    monkeypatch.setattr(decode, "simplejpeg", None)  # PIL's own decode
    assert all(np.array_equal(a, np.asarray(open_image(str(p))[0])) for a, p in zip(fast, paths, strict=True))
    monkeypatch.undo()
    (cut := tmp_path / "cut.jpeg").write_bytes(paths[0].read_bytes()[:4000])
    with pytest.raises(decode.InputError, match="truncated or corrupt"):
        open_image(str(cut))


def test_batch_augment_deterministic_per_generator():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(8) % 6
    aug = BatchAugment(CFG, rotate="any", flip=True, mirror_label_swap={1: 2, 2: 1})
    a = aug(x, y, generator=torch.Generator().manual_seed(3))
    b = aug(x, y, generator=torch.Generator().manual_seed(3))
    c = aug(x, y, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].dtype == torch.float32 and a[0].shape == x.shape


def test_flip_swaps_mirror_labels():
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    y = torch.arange(64) % 6
    aug = BatchAugment(
        CFG, rotate=None, flip=True, mirror_label_swap={1: 2, 2: 1}, max_shift=0, brightness=0, contrast=0
    )
    out, y2 = aug(x, y, generator=torch.Generator().manual_seed(0))
    plain, mirror = normalize_batch(x, CFG), normalize_batch(x.flip(-1), CFG)
    flipped = torch.tensor([torch.allclose(o, m, atol=1e-5) for o, m in zip(out, mirror, strict=True)])
    kept = torch.tensor([torch.allclose(o, p, atol=1e-5) for o, p in zip(out, plain, strict=True)])
    assert torch.all(flipped ^ kept) and 10 < flipped.sum() < 54
    expect = torch.where(flipped & (y == 1), 2, torch.where(flipped & (y == 2), 1, y))
    assert torch.equal(y2, expect)


def test_rotate_90_is_exact_pixel_permutation():
    x = torch.randint(0, 256, (16, 3, 20, 20), dtype=torch.uint8)
    aug = BatchAugment(CFG, rotate="90", flip=False, max_shift=0, brightness=0, contrast=0)
    out, _ = aug(x, torch.zeros(16, dtype=torch.long), generator=torch.Generator().manual_seed(1))
    seen = set()
    for i in range(16):
        for k in range(4):
            if torch.allclose(
                out[i], normalize_batch(torch.rot90(x[i : i + 1], k, dims=(-2, -1)), CFG)[0], atol=1e-5
            ):
                seen.add(k)
                break
        else:
            raise AssertionError(f"image {i} is not a 90-degree rotation of its input")
    assert len(seen) >= 3


def test_any_angle_keeps_round_galaxy_and_shift_moves_it():
    yy, xx = torch.meshgrid(torch.arange(32.0) - 15.5, torch.arange(32.0) - 15.5, indexing="ij")
    blob = (255 * torch.exp(-(xx**2 + yy**2) / 30)).to(torch.uint8).expand(4, 3, 32, 32).contiguous()
    rot = BatchAugment(CFG, rotate="any", flip=True, max_shift=0, brightness=0, contrast=0)
    out, _ = rot(blob, torch.zeros(4, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert (out - normalize_batch(blob, CFG)).abs().max() < 0.05 / 0.2
    shift = BatchAugment(CFG, rotate=None, flip=False, max_shift=0.2, brightness=0, contrast=0)
    moved, _ = shift(blob, torch.zeros(4, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert (moved - normalize_batch(blob, CFG)).abs().max() > 1.0


def test_train_transform_shape():
    tf = train_transform(CFG)
    out = tf(_split(1)[0]["image"])
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


def test_synthetic_galaxies():
    a = make_synthetic_galaxies(6, 48, seed=5)
    b = make_synthetic_galaxies(6, 48, seed=5)
    c = make_synthetic_galaxies(6, 48, seed=6)
    assert a.images.shape == (60, 48, 48, 3) and a.images.dtype == np.uint8
    assert a.masks.shape == (60, 48, 48) and a.masks.dtype == bool
    assert np.bincount(a.labels).tolist() == [6] * 10
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    # every image has its defining structure, and that structure is brighter than the sky around it
    for img, mask in zip(a.images.astype(float).mean(-1), a.masks, strict=True):
        assert 0 < mask.sum() < mask.size / 2
        assert img[mask].mean() > np.median(img[~mask]) + 10
    # dark sky, as survey cutouts: the image borders are near the sky level
    border = np.concatenate([a.images[:, :3].reshape(-1, 3), a.images[:, -3:].reshape(-1, 3)])
    assert 15 < np.median(border) < 60
    with pytest.raises(ValueError, match="n_per_class"):
        make_synthetic_galaxies(0, 32)
