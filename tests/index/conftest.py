from __future__ import annotations

from pathlib import Path

import pytest

from nmodal.index import build_index
from tests.index.fixtures import Collection, make_collection


@pytest.fixture(scope="session")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return make_collection(tmp_path_factory.mktemp("collection"), num_posts=240)


@pytest.fixture(scope="session")
def exact_index(collection: Collection, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "exact"
    return build_index(collection.model, collection.store, collection.dataset, out, progress=False)
