"""``TrainConfig(init="auto")``: the start kept is the one with the better validation
retrieval, computed here independently; the inner split is grouped; runs are reproducible;
too few posts fall back to the random start; explicit starts train as they did."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmodal.features.featureset import FeatureSet
from nmodal.features.synthetic import make_synthetic
from nmodal.model import HeadConfig, NModalModel
from nmodal.retrieval import post_retrieval_recall
from nmodal.train import TrainConfig, split_posts, train_model
from nmodal.train.trainer import AUTO_STARTS, GCCA_MIN_POSTS, _inner_split

GROUP = 6  # posts per group of the toy collection


def _config(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        epochs=3, batch_size=32, head=HeadConfig(projection_dim=8), device="cpu", amp="off"
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    return make_synthetic(180, dim=[12, 16, 20], latent_dim=4, noise=0.5, seed=0)


def _score(model: NModalModel, fs: FeatureSet) -> float:
    """Mean of R@1/5/10 of post retrieval (sum of cosines), by the public functions."""
    emb = model.embed({m: fs.features[m] for m in model.modalities})
    recall = post_retrieval_recall([emb[m] for m in model.modalities], ks=(1, 5, 10))
    return float(np.mean(list(recall.values())))


def _explicit(init: str, seed: int = 0) -> TrainConfig:
    """The auto candidate ``init`` spelled out as an explicit start."""
    return _config(init=init, seed=seed, **AUTO_STARTS[init])


def _same_weights(a: NModalModel, b: NModalModel) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_auto_keeps_the_start_with_the_better_inner_validation_retrieval(fs) -> None:
    train = fs.subset(range(150))
    groups = np.arange(150) // GROUP
    result = train_model(train, _config(seed=3), progress=False, groups=groups)
    split = split_posts(150, test_size=0, val_fraction=0.2, seed=3, groups=groups)
    fit, held = train.subset(split.train), train.subset(split.val)
    scores = {
        init: _score(train_model(fit, _explicit(init, seed=3), progress=False).model, held)
        for init in AUTO_STARTS
    }
    expected = max(scores, key=lambda init: (scores[init], init == "random"))
    choice = result.init_choice
    assert choice is not None and choice["chosen"] == expected
    assert choice["scores"] == pytest.approx(scores, abs=1e-9)
    assert choice["posts"] == {"fit": len(split.train), "score": len(split.val)}
    assert result.model.config.extra["train"]["init_chosen"] == expected
    assert result.model.config.extra["train"]["init"] == "auto"
    # then the chosen start trained again on all the training posts, same seed
    final = train_model(train, _explicit(expected, seed=3), progress=False)
    _same_weights(result.model, final.model)


def test_auto_with_a_validation_set_chooses_on_it(fs) -> None:
    train, val = fs.subset(range(150)), fs.subset(range(150, 180))
    result = train_model(train, _config(), val=val, progress=False)
    runs = {
        init: train_model(train, _explicit(init), val=val, progress=False) for init in AUTO_STARTS
    }
    scores = {init: _score(r.model, val) for init, r in runs.items()}
    expected = max(scores, key=lambda init: (scores[init], init == "random"))
    assert result.init_choice is not None and result.init_choice["chosen"] == expected
    assert result.init_choice["on"] == "validation set"
    assert result.init_choice["scores"] == pytest.approx(scores, abs=1e-9)
    _same_weights(result.model, runs[expected].model)  # no retraining: val is separate


def test_auto_is_reproducible(fs) -> None:
    train, groups = fs.subset(range(150)), np.arange(150) // GROUP
    a = train_model(train, _config(seed=5), progress=False, groups=groups)
    b = train_model(train, _config(seed=5), progress=False, groups=groups)
    assert a.init_choice == b.init_choice
    _same_weights(a.model, b.model)


def test_inner_split_keeps_whole_groups_on_one_side(fs) -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 25, size=150)
    fit, held = _inner_split(fs.subset(range(150)), fs.modalities, _config(seed=2), groups)
    assert set(groups[fit]).isdisjoint(groups[held])
    assert len(fit) + len(held) == 150 and 0.1 < len(held) / 150 < 0.35
    # a single group cannot be split: no contest
    assert _inner_split(fs.subset(range(150)), fs.modalities, _config(), np.zeros(150)) is None


@pytest.mark.parametrize("case", ["few posts", "few to score on", "one group"])
def test_auto_falls_back_to_the_random_start(fs, case) -> None:
    if case == "few posts":
        train, groups = fs.subset(range(GCCA_MIN_POSTS - 1)), None
    elif case == "few to score on":  # an inner fifth of 60 posts: 12 < AUTO_MIN_SCORE_POSTS
        train, groups = fs.subset(range(60)), None
    else:
        train, groups = fs.subset(range(60)), np.zeros(60)
    result = train_model(train, _config(), progress=False, groups=groups)
    assert result.init_choice is not None and result.init_choice["chosen"] == "random"
    assert "scores" not in result.init_choice
    _same_weights(result.model, train_model(train, _explicit("random"), progress=False).model)


def test_explicit_starts_train_as_before(fs) -> None:
    """``init="random"`` / ``"gcca"``: one run, lr 1e-3 and no weight decay unless set."""
    train = fs.subset(range(150))
    for init in ("random", "gcca"):
        result = train_model(train, _config(init=init), progress=False)
        spelled = train_model(train, _config(init=init, lr=1e-3, weight_decay=0.0), progress=False)
        assert result.init_choice is None
        assert "init_chosen" not in result.model.config.extra["train"]
        assert result.history[0]["lr"] == pytest.approx(1e-3)
        _same_weights(result.model, spelled.model)


def test_set_learning_rate_applies_to_every_auto_candidate(fs) -> None:
    result = train_model(fs.subset(range(150)), _config(lr=3e-4), progress=False)
    assert result.init_choice is not None
    assert {c["lr"] for c in result.init_choice["candidates"].values()} == {3e-4}
    assert result.history[0]["lr"] == pytest.approx(3e-4)


def test_groups_must_match_the_training_posts(fs) -> None:
    from nmodal.errors import InputError

    with pytest.raises(InputError, match="groups has shape"):
        train_model(fs.subset(range(150)), _config(), progress=False, groups=np.zeros(10))
