"""The Galaxy Zoo 2 vote head: loss on hand-computed cases, shapes, and default models left as they were."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn as nn

from timm_galaxy_attn.data.gz2_kaggle import GZ2_KAGGLE_CLASSES as OLD_KAGGLE
from timm_galaxy_attn.data.gz2_kaggle import GZ2_SPIRAL_CLASSES as OLD_SPIRAL
from timm_galaxy_attn.data.gz2_kaggle import KAGGLE_VOTE_COLUMNS
from timm_galaxy_attn.labels import DATASET_CLASSES, MIRROR_LABEL_SWAPS, class_names
from timm_galaxy_attn.training.joint import JointLoss, source_votes
from timm_galaxy_attn.vote_head import (
    VOTE_QUESTIONS,
    VoteHead,
    question_slices,
    vote_loss,
    vote_target_columns,
)

TWO = {"a": ("a_yes", "a_no"), "b": ("b_1", "b_2", "b_3")}  # a 2-question tree for hand computation


def test_questions_cover_the_kaggle_columns_and_spiral() -> None:
    columns = vote_target_columns()
    assert columns[: len(KAGGLE_VOTE_COLUMNS)] == list(KAGGLE_VOTE_COLUMNS.values())
    assert list(VOTE_QUESTIONS) == ["gz2_t01", "gz2_t02", "gz2_t06", "gz2_t07", "gz2_t08", "cc_spiral"]
    assert [len(a) for a in VOTE_QUESTIONS.values()] == [3, 2, 2, 3, 7, 2]
    assert question_slices(TWO) == {"a": slice(0, 2), "b": slice(2, 5)}


def test_class_names_live_in_labels() -> None:
    assert class_names("gz2_kaggle") == OLD_KAGGLE == ("smooth", "features or disk", "star or artifact")
    assert class_names("gz2_kaggle_spiral") == OLD_SPIRAL == ("non-spiral", "spiral")
    assert MIRROR_LABEL_SWAPS["gz2_kaggle"] == {} and "gz2_kaggle_spiral" in DATASET_CLASSES


def test_loss_by_hand_with_question_weighting() -> None:
    # galaxy 0: question a reached by all (0.75 / 0.25), b by 0.5 of the volunteers (0.25, 0.25, 0)
    votes = torch.tensor([[0.75, 0.25, 0.25, 0.25, 0.0]])
    outputs = {"a": torch.zeros(1, 2), "b": torch.tensor([[math.log(2.0), 0.0, 0.0]])}  # p_b = (.5, .25, .25)
    ce_a = math.log(2.0)  # uniform prediction: cross-entropy log 2 whatever the target
    ce_b = -(0.5 * math.log(0.5) + 0.5 * math.log(0.25))  # target (0.5, 0.5, 0)
    expected = 1.0 * ce_a + 0.5 * ce_b
    assert vote_loss(outputs, votes, TWO).item() == pytest.approx(expected, rel=1e-6)


def test_loss_masks_galaxies_without_votes() -> None:
    votes = torch.tensor([[1.0, 0.0, 0.2, 0.3, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]])
    outputs = {"a": torch.randn(2, 2), "b": torch.randn(2, 3)}
    alone = vote_loss({q: v[:1] for q, v in outputs.items()}, votes[:1], TWO)
    assert vote_loss(outputs, votes, TWO).item() == pytest.approx(alone.item(), rel=1e-6)
    none = {q: v.requires_grad_() for q, v in {"a": torch.randn(2, 2), "b": torch.randn(2, 3)}.items()}
    loss = vote_loss(none, torch.zeros(2, 5), TWO)
    loss.backward()
    assert loss.item() == 0.0 and none["a"].grad is not None and not none["a"].grad.any()


def test_loss_names_a_wrong_width() -> None:
    with pytest.raises(ValueError, match="5 columns; these questions need 19"):
        vote_loss({}, torch.zeros(1, 5))


def test_joint_loss_equals_cross_entropy_on_labelled_and_masks_the_rest() -> None:
    torch.manual_seed(0)
    weight = torch.tensor([0.5, 1.0, 2.0])
    logits, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    reference = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1)(logits, y)
    loss = JointLoss(weight, 0.1, vote_weight=1.0)
    n = len(vote_target_columns())
    questions = {q: torch.zeros(4, len(a)) for q, a in VOTE_QUESTIONS.items()}
    assert loss(logits, questions, y, torch.zeros(4, n)).item() == pytest.approx(reference.item(), rel=1e-6)
    # two more images without GZ1 labels: the GZ1 term does not change
    logits6 = torch.cat([logits, torch.randn(2, 3)])
    y6 = torch.cat([y, torch.tensor([-1, -1])])
    q6 = {q: torch.zeros(6, len(a)) for q, a in VOTE_QUESTIONS.items()}
    assert loss(logits6, q6, y6, torch.zeros(6, n)).item() == pytest.approx(reference.item(), rel=1e-6)
    # no GZ1 label at all: only the vote term (here uniform over the spiral question: log 2)
    votes = torch.zeros(2, n)
    votes[:, -2] = 1.0
    only = loss(torch.randn(2, 3), {q: v[:2] for q, v in q6.items()}, torch.tensor([-1, -1]), votes)
    assert only.item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_source_votes_spiral_one_hot() -> None:
    names = vote_target_columns()
    cols = {"gz2_t01_smooth": [0.6, 0.1], "cc_spiral": [1, -1]}
    votes = source_votes(cols, ["smooth", "features or disk", "star or artifact"], 2)
    assert votes[0, names.index("gz2_t01_smooth")] == pytest.approx(0.6)
    assert votes[0, -2:].tolist() == [0.0, 1.0] and votes[1, -2:].tolist() == [0.0, 0.0]
    spiral = source_votes({"label": [0, 1]}, ["non-spiral", "spiral"], 2)
    assert spiral[:, -2:].tolist() == [[1.0, 0.0], [0.0, 1.0]] and not spiral[:, :-2].any()


def test_head_shapes_and_gz1_outputs_unchanged() -> None:
    torch.manual_seed(0)
    plain = timm.create_model("galaxy_attn_vgg_tiny_s4", num_classes=6).eval()
    voted = timm.create_model("galaxy_attn_vgg_tiny_s4", num_classes=6, vote_head=True).eval()
    missing, unexpected = voted.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("vote_head.") for k in missing)
    x = torch.randn(2, 3, 128, 128)
    features = voted.forward_features(x)
    torch.testing.assert_close(voted(x), plain(x))
    torch.testing.assert_close(voted.forward_head(features), plain(x))
    out = voted.forward_questions(features)
    assert {q: tuple(v.shape) for q, v in out.items()} == {q: (2, len(a)) for q, a in VOTE_QUESTIONS.items()}
    assert isinstance(voted.vote_head, VoteHead)
    with pytest.raises(RuntimeError, match="vote_head=True"):
        plain.forward_questions(features)


def test_default_model_has_no_vote_head() -> None:
    model = timm.create_model("galaxy_attn_vgg_tiny_s4")
    assert model.vote_head is None
    assert not any(k.startswith("vote_head") for k in model.state_dict())


def test_shipped_weights_load_strictly() -> None:
    model = timm.create_model("galaxy_attn_vgg_tiny_s4.gz1_sdss", pretrained=True)  # strict load inside
    assert model.vote_head is None and model.num_classes == 6


def test_pretrained_vote_head_loads_from_beside_the_weights(tmp_path) -> None:
    import safetensors.torch

    from timm_galaxy_attn.hf import save_pretrained_folder
    from timm_galaxy_attn.vote_head import VOTE_HEAD_FILE

    torch.manual_seed(0)
    trained = timm.create_model("galaxy_attn_vgg_small", num_classes=6, vote_head=True).eval()
    head, trained.vote_head = trained.vote_head, None
    folder = save_pretrained_folder(trained, tmp_path / "model", label_names=[str(i) for i in range(6)])
    with pytest.raises(RuntimeError, match="have no vote head"):
        timm.create_model(f"local-dir:{folder}", pretrained=True, vote_head=True)
    safetensors.torch.save_file(head.state_dict(), str(folder / VOTE_HEAD_FILE))
    plain = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    both = timm.create_model(f"local-dir:{folder}", pretrained=True, vote_head=True).eval()
    assert plain.vote_head is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = both.forward_features(x)
        expected = head(features)
        assert torch.equal(both(x), plain(x))
        got = both.forward_questions(features)
    assert got.keys() == expected.keys() and all(torch.equal(got[q], expected[q]) for q in got)
