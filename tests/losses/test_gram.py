"""GramLoss against the GRAM paper's definition written as loops, fixed geometric inputs,
its data-anchor matching term, and the retrieval rule that scores with it."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nmodal.errors import InputError
from nmodal.losses import GramLoss, build_loss, with_modalities
from nmodal.losses.gram import hard_negatives, tuple_cosines, tuple_volumes
from nmodal.retrieval import retrieval_ranks
from tests.helpers.tensors import random_embeddings

from .reference import dot, gram_loop, gram_volumes, log_softmax_at, rows, unit, volume

embeddings = partial(random_embeddings, batch=5, dim=6)


# ------------------------------------------------ the contrastive loss = the paper's definition


@pytest.mark.parametrize("num", [2, 3, 4])
@pytest.mark.parametrize("anchor", [0, 1])
def test_matches_loop(num, anchor):
    z = embeddings(num, seed=40 + num)
    loss = GramLoss(anchor=anchor, temperature=0.1).double()
    expected = gram_loop(z, loss.temperature, anchor=anchor)
    assert loss(z).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("num", [3, 4])
def test_label_smoothing_matches_loop(num):
    """The authors' code smooths both cross-entropies by 0.1."""
    z = embeddings(num, seed=7)
    loss = GramLoss(temperature=0.2, label_smoothing=0.1).double()
    expected = gram_loop(z, loss.temperature, label_smoothing=0.1)
    assert loss(z).item() == pytest.approx(expected, rel=1e-9)
    assert expected != pytest.approx(gram_loop(z, loss.temperature), rel=1e-3)


def test_without_normalisation_matches_loop():
    z = embeddings(3, seed=11, scale=0.4)
    loss = GramLoss(temperature=0.5, normalize=False).double()
    assert loss(z).item() == pytest.approx(gram_loop(z, 0.5, normalize=False), rel=1e-6)


def test_fixed_orthonormal_and_degenerate_tuples():
    """Peer-style fixed input: volumes known from geometry, the loss from them by hand.

    Batch of 2 in R^3, anchor e1: item 0's tuple (e1, e2, e3) spans volume 1; item 1's
    tuple is (e1, e1, e2) whose volume is 0 (clamped to sqrt(1e-8) = 1e-4). Cross volumes:
    Vol(e1, e1, e2) = 1e-4 for anchor 0 against tuple 1, Vol(e1, e2, e3) = 1 for anchor 1
    against tuple 0.
    """
    e = torch.eye(3, dtype=torch.float64)
    anchor = torch.stack([e[0], e[0]])
    second = torch.stack([e[1], e[0]])
    third = torch.stack([e[2], e[1]])
    vol = tuple_volumes(anchor, torch.stack([second, third]))
    torch.testing.assert_close(vol, torch.tensor([[1.0, 1e-4], [1.0, 1e-4]], dtype=torch.float64))
    loss = GramLoss(temperature=0.5, learn_temperature=False).double()
    t = loss.temperature
    # rows: item 0 prefers tuple 1 (-1e-4/t > -1/t); item 1 picks its own
    row0 = math.log1p(math.exp((-1e-4 + 1.0) / t))
    row1 = math.log1p(math.exp((-1.0 + 1e-4) / t))
    col0 = math.log(2)  # tuple 0 has volume 1 with both anchors
    col1 = math.log(2)
    expected = ((row0 + row1) / 2 + (col0 + col1) / 2) / 2
    assert loss([anchor, second, third]).item() == pytest.approx(expected, rel=1e-9)


def test_volume_of_three_vectors_at_known_angles():
    """Unit vectors at 60 degrees pairwise: det G = 1 - 3/4 + 2/8 = 1/2."""
    g = torch.tensor([[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]], dtype=torch.float64)
    vecs = torch.linalg.cholesky(g)  # rows with exactly these dot products
    vol = tuple_volumes(vecs[:1], vecs[1:, None, :])
    assert vol.item() == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert volume(rows(vecs)) == pytest.approx(math.sqrt(0.5), rel=1e-12)


def test_two_modalities_volume_is_sine():
    x, y = (F.normalize(t.detach(), dim=-1) for t in embeddings(2, batch=4, seed=1))
    cos = x @ y.T
    vol = tuple_volumes(x, y[None])
    torch.testing.assert_close(vol, (1 - cos**2).sqrt(), rtol=1e-9, atol=1e-12)


def test_volume_is_blind_to_signs_and_to_all_but_one_collinear_pair():
    """The two properties that make GRAM hard to train from scratch (see the module doc)."""
    a, b, c, d = (F.normalize(t.detach(), dim=-1) for t in embeddings(4, batch=1, seed=2))
    flipped = tuple_volumes(a, torch.stack([-b, c, -d]))
    assert flipped.item() == pytest.approx(tuple_volumes(a, torch.stack([b, c, d])).item())
    collapsed = tuple_volumes(a, torch.stack([a, c, d]))  # anchor = first other, rest random
    assert collapsed.item() == pytest.approx(1e-4, rel=1e-6)


def test_gradients_are_finite_for_aligned_tuples():
    base = torch.randn(4, 8, dtype=torch.float64)
    z = [base.clone().requires_grad_() for _ in range(3)]  # positives exactly collinear
    GramLoss().double()(z).backward()
    assert all(torch.isfinite(t.grad).all() for t in z)


def test_computes_in_float32_under_half_precision():
    loss = GramLoss()
    z32 = [t.detach().float() for t in embeddings(3, batch=6, dim=8, seed=12)]
    z16 = [t.bfloat16().requires_grad_() for t in z32]
    reference = loss([t.bfloat16().float() for t in z32])
    value = loss(z16)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    value.backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in z16)


# ------------------------------------------------ data-anchor matching


def gelu(x: float) -> float:
    return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))


def dam_loop(embeddings, loss, anchor=0):
    """GRAM's contrastive loss + dam_weight * BCE of the matching head over the positives
    and the hardest negatives, written with loops (the head's weights read from the loss)."""
    mats = [[unit(r) for r in rows(z)] for z in embeddings]
    batch, num = len(mats[0]), len(mats)
    vol = gram_volumes(mats, anchor)
    neg_data = [
        min((j for j in range(batch) if j != i), key=lambda j: vol[i][j]) for i in range(batch)
    ]
    neg_anchor = [
        min((i for i in range(batch) if i != j), key=lambda i: vol[i][j]) for j in range(batch)
    ]
    examples = [(i, i, 1.0) for i in range(batch)]
    examples += [(i, neg_data[i], 0.0) for i in range(batch)]
    examples += [(neg_anchor[j], j, 0.0) for j in range(batch)]
    w1, b1, w2, b2 = (
        rows(p) if p.ndim == 2 else [float(v) for v in p.detach()]
        for p in [
            loss.dam_head[0].weight,
            loss.dam_head[0].bias,
            loss.dam_head[2].weight,
            loss.dam_head[2].bias,
        ]
    )
    bce = 0.0
    for p, q, label in examples:
        vecs = [mats[m][p] if m == anchor else mats[m][q] for m in range(num)]
        feats = [dot(vecs[u], vecs[v]) for u in range(num) for v in range(u + 1, num)]
        hidden = [gelu(dot(w, feats) + b) for w, b in zip(w1, b1, strict=True)]
        s = dot(w2[0], hidden) + b2[0]
        # -log sigmoid(s) for a match, -log(1 - sigmoid(s)) otherwise
        bce += -log_softmax_at([s, 0.0], 0) if label else -log_softmax_at([s, 0.0], 1)
    return gram_loop(embeddings, loss.temperature, anchor=anchor) + loss.dam_weight * bce / len(
        examples
    )


@pytest.mark.parametrize("num", [3, 4])
def test_dam_with_hardest_negatives_matches_loop(num):
    z = embeddings(num, batch=6, seed=60 + num)
    mods = ["text", "image", "video", "audio"][:num]
    loss = GramLoss(modalities=mods, dam_weight=0.5, dam_negatives="hardest", temperature=0.1)
    loss = loss.double()
    assert loss(z).item() == pytest.approx(dam_loop(z, loss), rel=1e-9)


def test_dam_sampled_negatives_are_never_the_positive_and_follow_the_volumes():
    torch.manual_seed(0)
    vol = torch.tensor([[0.1, 0.2, 0.9], [0.3, 0.1, 0.9], [0.5, 0.05, 0.2]])
    draws = torch.stack([hard_negatives(vol, torch.tensor(10.0), "sample") for _ in range(400)])
    assert not (draws == torch.arange(3)).any()
    # row 0: j = 1 (volume 0.2) is exp(7) times likelier than j = 2 (volume 0.9)
    assert (draws[:, 0] == 1).float().mean() > 0.95
    assert hard_negatives(vol, torch.tensor(10.0), "hardest").tolist() == [1, 0, 1]


def test_dam_head_is_trained_and_saved_with_the_model(tmp_path):
    from nmodal.model import ModelConfig, NModalModel

    mods = ["text", "image", "video"]
    spec = with_modalities({"name": "gram", "dam_weight": 1.0}, mods)
    loss = build_loss(spec)
    names = {n for n, _ in loss.named_parameters()}
    assert {"log_logit_scale", "dam_head.0.weight", "dam_head.2.bias"} <= names
    z = embeddings(3, batch=6, seed=3)
    loss.double()(z).backward()
    assert loss.dam_head[0].weight.grad is not None
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in z)
    config = ModelConfig(modalities=mods, input_dims={m: 4 for m in mods}, loss=spec)
    model = NModalModel(config, loss=build_loss(spec))
    model.save(tmp_path / "m")
    loaded = NModalModel.load(tmp_path / "m")
    torch.testing.assert_close(loaded.loss.dam_head[0].weight, model.loss.dam_head[0].weight)


def test_tuple_cosines_layout():
    z = torch.stack([F.normalize(t.detach(), dim=-1) for t in embeddings(3, batch=4, seed=5)])
    feats = tuple_cosines(z, 1, torch.tensor([2]), torch.tensor([0]))
    # modality 1 from item 2, modalities 0 and 2 from item 0; pairs (0,1), (0,2), (1,2)
    expected = [z[0, 0] @ z[1, 2], z[0, 0] @ z[2, 0], z[1, 2] @ z[2, 0]]
    torch.testing.assert_close(feats[0], torch.stack(expected))


def test_bad_options():
    with pytest.raises(InputError, match="label_smoothing"):
        GramLoss(label_smoothing=1.0)
    with pytest.raises(InputError, match="dam_weight"):
        GramLoss(dam_weight=-1.0)
    with pytest.raises(InputError, match="dam_negatives"):
        GramLoss(dam_weight=1.0, modalities=["a", "b"], dam_negatives="random")
    with pytest.raises(InputError, match="needs modalities"):
        GramLoss(dam_weight=1.0)
    loss = GramLoss(dam_weight=1.0, modalities=["a", "b", "c"])
    with pytest.raises(InputError, match="got 2 embeddings"):
        loss([t.detach().float() for t in embeddings(2)])


# ------------------------------------------------ the scoring rule used to evaluate GRAM


def test_gram_retrieval_ranks_by_smallest_volume():
    """scoring='gram': the post whose other artifacts span the smallest volume with the query
    ranks first (computed here with the loop determinant)."""
    rng = np.random.default_rng(0)
    z = [rng.normal(size=(6, 5)) for _ in range(3)]
    ranks = retrieval_ranks(z, scoring="gram")["ranks"]
    mats = [[unit(list(r)) for r in m] for m in z]
    for q in range(3):
        others = [m for m in range(3) if m != q]
        for row, i in enumerate(range(6)):
            vols = [volume([mats[q][i], *[mats[m][j] for m in others]], eps=0.0) for j in range(6)]
            expected = 1 + sum(v <= vols[i] for j, v in enumerate(vols) if j != i)
            assert ranks[f"m{q}"][row] == expected
