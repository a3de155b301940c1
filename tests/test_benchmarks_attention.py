"""benchmarks/attention.py's map measures on hand-made maps (no model, no training)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def att():
    return load_script("benchmarks/attention.py", "bench_attention")


def test_mass_inside_mask_and_null_maps(att):
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[:, :4, :4] = True  # a quarter of the image
    on_mask = np.zeros((2, 4, 4))
    on_mask[:, :2, :2] = 1.0  # all mass on the masked quarter, at half the resolution
    assert np.allclose(att.mass_inside(on_mask, masks), 1.0)
    off = np.zeros((2, 4, 4))
    off[:, 3, 3] = 5.0  # unnormalised: scaled to a distribution first
    assert np.allclose(att.mass_inside(off, masks), 0.0)

    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    images[:, :4, :4] = 200  # the masked quarter is the bright one
    nulls = att.null_maps(images, (4, 4))
    assert set(nulls) == {"uniform", "brightness", "centre"}
    for m in nulls.values():
        assert np.allclose(m.sum(axis=(1, 2)), 1.0)
    assert np.allclose(att.mass_inside(nulls["uniform"], masks), 0.25)
    assert np.allclose(att.mass_inside(nulls["brightness"], masks), 1.0)
    centre = nulls["centre"][0]
    assert centre[1:3, 1:3].min() > centre[0, 0]  # peaks in the middle
    assert np.allclose(att.mass_inside(nulls["centre"], masks), 0.25)  # symmetric: a quarter


def test_spearman_iou_entropy(att):
    rng = np.random.default_rng(0)
    a = rng.random((3, 5, 5))
    assert np.allclose(att.spearman(a, 2 * a + 1), 1.0)  # monotone transform: rank correlation 1
    assert np.allclose(att.spearman(a, -a), -1.0)
    assert np.allclose(att.spearman(a, np.ones_like(a)), 0.0)  # constant map: defined as 0
    assert np.allclose(att.top_iou(a, a**3), 1.0)
    b = -a  # top 20% of a = bottom 20% of b: disjoint
    assert np.allclose(att.top_iou(a, b), 0.0)
    # 25 positions, top 5: one shared position out of 9 in the union
    x = np.zeros((1, 5, 5))
    y = np.zeros((1, 5, 5))
    x.reshape(-1)[[0, 1, 2, 3, 4]] = [9, 8, 7, 6, 5]
    y.reshape(-1)[[4, 10, 11, 12, 13]] = [9, 8, 7, 6, 5]
    assert att.top_iou(x, y)[0] == pytest.approx(1 / 9)

    uniform = np.full((1, 4, 4), 1 / 16)
    spike = np.zeros((1, 4, 4))
    spike[0, 2, 1] = 1.0
    assert att.normalised_entropy(uniform)[0] == pytest.approx(1.0)
    assert att.normalised_entropy(spike)[0] == pytest.approx(0.0)
    assert att.peak_mass(spike)[0] == pytest.approx(1.0) and att.peak_mass(uniform)[0] == pytest.approx(
        1 / 16
    )


def test_class_sample(att):
    labels = np.array([2, 0, 0, 1, 2, 0, 2])
    assert att.class_sample(labels, 2, 4) == [1, 2, 3, 0, 4]
