"""Training from a store on disk gives exactly the in-memory results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nmodal.features import StoreReader, make_synthetic, read_featureset, write_featureset
from nmodal.train import TrainConfig, train_model


def test_disk_batches_train_identically_to_memory(tmp_path: Path) -> None:
    fs = make_synthetic(300, dim=(8, 12, 10), missing_rate=0.2, seed=1, dtype=np.float16)
    path = write_featureset(tmp_path / "s", fs, shard_size=32)
    order = np.random.default_rng(0).permutation(300)
    train, val = order[:250], order[250:]
    config = TrainConfig(epochs=2, batch_size=32, missing="mask", seed=3, amp="off")
    memory = read_featureset(path)  # float32 in memory, as before
    view = StoreReader(path).view()  # float16 on disk, converted batch by batch
    a = train_model(memory.subset(train), config, val=memory.subset(val), progress=False)
    b = train_model(view.subset(train), config, val=view.subset(val), progress=False)
    assert a.history == b.history
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # the fingerprint of on-disk data comes from the shard hashes and the rows, unread
    assert b.model.config.data_fingerprint == view.subset(train).fingerprint()
