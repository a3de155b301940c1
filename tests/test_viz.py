"""Tests of timm_galaxy_attn.viz: layout, where heat lands, input forms, atomic writes and bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from timm_galaxy_attn import viz

TILE_32 = 128  # a 32 px galaxy is shown 4x, nearest
PAD_128 = 4


def _gray(size=32, value=128):
    return np.full((size, size, 3), value, dtype=np.uint8)


def _maps(size=32, hot=((5, 20), (3, 12), (1, 6))):
    out = []
    for k, (r, c) in enumerate(hot):
        m = np.zeros((size // 2**k, size // 2**k), dtype=np.float32)
        m[r, c] = 1.0
        out.append(m)
    return out


def _tile_box(fig: np.ndarray, col: int, tile: int, pad: int):
    """(top, left) of tile ``col`` in a one-row figure: the rows where that column is not white paper."""
    left = pad + col * (tile + pad)
    column = fig[:, left : left + tile]
    not_paper = np.where((column != 255).any(axis=2).all(axis=1))[0]
    return int(not_paper[0]), left, int(not_paper[-1] - not_paper[0] + 1)


def test_attention_figure_layout_and_hot_spots():
    fig = viz.attention_figure(_gray(), _maps(), title="a galaxy")
    assert isinstance(fig, Image.Image) and fig.mode == "RGB"
    w, h = fig.size
    assert 4 * TILE_32 <= w <= 4 * TILE_32 + 5 * PAD_128  # four tiles side by side, ~4x a tile
    assert TILE_32 < h < 2 * TILE_32  # one row plus title and labels
    arr = np.asarray(fig)
    # expected brightest display pixel of each map: centre of its hot cell, scaled to the 128 px tile
    for col, ((r, c), size) in enumerate(zip(((5, 20), (3, 12), (1, 6)), (32, 16, 8), strict=True), start=1):
        top, left, height = _tile_box(arr, col, TILE_32, PAD_128)
        assert height == TILE_32
        tile = arr[top : top + TILE_32, left : left + TILE_32].astype(float).sum(axis=2)
        rr, cc = np.unravel_index(np.argmax(tile), tile.shape)
        scale = TILE_32 / size
        assert abs(rr - (r + 0.5) * scale) <= scale, (col, rr, cc)
        assert abs(cc - (c + 0.5) * scale) <= scale, (col, rr, cc)
        assert tile.max() > 1.3 * np.median(tile)  # the hot spot stands out
    # the input tile is the gray image, enlarged, untouched
    top, left, _ = _tile_box(arr, 0, TILE_32, PAD_128)
    assert np.all(arr[top : top + TILE_32, left : left + TILE_32] == 128)


def test_input_forms_give_the_same_figure():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    maps = [torch.rand(32, 32), torch.rand(16, 16), torch.rand(8, 8)]
    ref = np.asarray(viz.attention_figure(img, maps))
    chw_u8 = torch.from_numpy(img.copy()).permute(2, 0, 1)
    for form in (Image.fromarray(img), chw_u8, chw_u8.float() / 255, np.moveaxis(img, -1, 0)):
        assert np.array_equal(np.asarray(viz.attention_figure(form, maps)), ref)
    np_maps = [m.numpy() for m in maps]
    assert np.array_equal(np.asarray(viz.attention_figure(img, np_maps)), ref)
    # min-max per map: scaling a map changes nothing
    scaled = [np_maps[0] * 7 + 3, np_maps[1], np_maps[2]]
    assert np.array_equal(np.asarray(viz.attention_figure(img, scaled)), ref)


def test_tile_sizes_follow_the_image():
    maps = _maps()
    assert viz.attention_figure(_gray(256), maps).size[0] >= 4 * 256  # 256 px shown as is
    w69 = viz.attention_figure(_gray(69), maps).size[0]
    assert 4 * 138 <= w69 <= 4 * 138 + 5 * PAD_128  # 69 px enlarged 2x


def test_save_attention_grid_forms_rows_and_atomic_write(tmp_path):
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.random((3, 3, 32, 32), dtype=np.float32))
    captured = [torch.rand(3, 32, 32), torch.rand(3, 16, 16), torch.rand(3, 8, 8)]  # capture_attention form
    per_image = [[m[i] for m in captured] for i in range(3)]
    titles = [f"true: Merger / pred: Edge-on {i}" for i in range(3)]
    a = viz.save_attention_grid(batch, captured, tmp_path / "deep" / "dir" / "a.png", titles=titles)
    b = viz.save_attention_grid(list(batch), per_image, tmp_path / "b.png", titles=titles)
    assert a.is_file() and b.is_file()
    img_a, img_b = Image.open(a), Image.open(b)
    assert img_a.format == "PNG"
    assert np.array_equal(np.asarray(img_a), np.asarray(img_b))
    one = viz.save_attention_grid(batch[:1], [m[:1] for m in captured], tmp_path / "one.png")
    h1, h3 = Image.open(one).size[1], img_a.size[1]
    assert img_a.size[0] == Image.open(one).size[0]
    assert h3 > 3 * TILE_32 and h3 > 2.5 * h1  # one row per galaxy
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.png", "b.png", "one.png"]
    with pytest.raises(ValueError, match="3 titles for 2 images|2 titles for 3 images"):
        viz.save_attention_grid(batch, captured, tmp_path / "c.png", titles=titles[:2])
    with pytest.raises(ValueError, match="got 2 images but maps for 3"):
        viz.save_attention_grid(batch[:2], per_image, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_prediction_titles():
    names = ["Elliptical", "Merger"]
    assert viz.prediction_titles([0, 1], np.array([1, 1]), names) == [
        "true: Elliptical | pred: Merger",
        "true: Merger | pred: Merger",
    ]
    with pytest.raises(ValueError, match="2 true and 1 predicted"):
        viz.prediction_titles([0, 1], [1], names)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:  # viz saves to a temporary path beside the target
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        viz.save_image_grid([_gray()], tmp_path / "g.png")
    assert list(tmp_path.iterdir()) == []


def test_save_image_grid_layout(tmp_path):
    images = [_gray(32, v) for v in range(0, 250, 25)]  # 10 images
    path = viz.save_image_grid(images, tmp_path / "g.png", ncols=4)
    w, h = Image.open(path).size
    assert 4 * TILE_32 <= w <= 4 * TILE_32 + 5 * PAD_128
    assert 3 * TILE_32 <= h <= 3 * TILE_32 + 4 * PAD_128  # 3 rows, no captions
    captioned = viz.save_image_grid(
        images, tmp_path / "c.png", ncols=4, titles=[f"class {i}" for i in range(10)]
    )
    assert Image.open(captioned).size[1] > h + 3 * 10  # a caption line under each row
    assert Image.open(viz.save_image_grid(images[:3], tmp_path / "s.png")).size[0] < w  # ncols capped at n
    with pytest.raises(ValueError, match="ncols"):
        viz.save_image_grid(images, tmp_path / "x.png", ncols=0)


def test_plot_confusion_matrix(tmp_path):
    cm = np.array([[50, 3, 0], [4, 20, 1], [0, 0, 0]])  # last class absent from this split
    names = ["Elliptical", "Spiral anticlockwise", "Merger"]
    p = viz.plot_confusion_matrix(cm, names, tmp_path / "sub" / "cm.png", title="test")
    q = viz.plot_confusion_matrix(cm.tolist(), names, tmp_path / "cm_counts.png", normalize=False)
    for path in (p, q):
        img = Image.open(path)
        assert img.format == "PNG" and min(img.size) > 300
        arr = np.asarray(img.convert("RGB")).astype(int)
        assert (arr.sum(axis=2) < 600).mean() > 0.05  # something is drawn, not a blank page
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # no pyplot figure left open
    with pytest.raises(ValueError, match="label_names has 2 entries"):
        viz.plot_confusion_matrix(cm, names[:2], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion_matrix(np.ones((2, 3)), names[:2], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="non-negative"):
        viz.plot_confusion_matrix(-np.ones((2, 2)), names[:2], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_bad_inputs_raise():
    maps = _maps()
    with pytest.raises(ValueError, match="holds 2 attention maps; expected 3"):
        viz.attention_figure(_gray(), maps[:2])
    with pytest.raises(ValueError, match=r"maps\[1\] must be a 2-D"):
        viz.attention_figure(_gray(), [maps[0], np.zeros((2, 4, 4)), maps[2]])
    with pytest.raises(ValueError, match="NaN"):
        viz.attention_figure(_gray(), [maps[0], np.full((4, 4), np.nan), maps[2]])
    with pytest.raises(ValueError, match="looks normalised"):
        viz.attention_figure(torch.randn(3, 32, 32) * 3, maps)
    with pytest.raises(ValueError, match="got shape"):
        viz.attention_figure(np.zeros((32, 32, 5), dtype=np.uint8), maps)
    with pytest.raises(ValueError, match="colormap"):
        viz.attention_figure(_gray(), maps, cmap="no-such-map")
    with pytest.raises(ValueError, match="alpha"):
        viz.attention_figure(_gray(), maps, alpha=1.5)
