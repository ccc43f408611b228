"""A small PyTorch MLP behind the scikit-learn classifier interface.

Early stopping picks the epoch on a validation split carved from the data passed to
:meth:`TorchMLPClassifier.fit` only (inside cross-validation: the training fold), never
from test data; the published code picked the epoch on the test set. Seeded and
deterministic on CPU: the same data and ``seed`` give the same weights.

Example:
    >>> clf = TorchMLPClassifier(hidden_sizes=(64,), max_epochs=50, seed=0).fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X[:2]).shape  # doctest: +SKIP
    (2, 2)
    >>> clf.best_epoch_, len(clf.validation_indices_)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from nmodal.errors import InputError


def build_mlp(
    input_dim: int, hidden_sizes: Sequence[int], num_classes: int, dropout: float
) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout`` per hidden size, then a linear output layer."""
    layers: list[nn.Module] = []
    width = input_dim
    for h in hidden_sizes:
        layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(dropout)]
        width = int(h)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def validation_split(
    y_idx: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of positions ``0..n-1`` into (train, validation).

    Each class gives ``round(fraction * count)`` rows to validation, but keeps at least
    one row for training; classes with a single row give none.
    """
    order = rng.permutation(len(y_idx))
    y_perm = y_idx[order]
    # stable sort by class keeps the random order inside each class
    by_class = order[np.argsort(y_perm, kind="stable")]
    counts = np.bincount(y_idx)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_val = np.minimum(np.round(fraction * counts).astype(int), np.maximum(counts - 1, 0))
    rank = np.arange(len(y_idx)) - np.repeat(starts, counts)
    is_val = rank < np.repeat(n_val, counts)
    return np.sort(by_class[~is_val]), np.sort(by_class[is_val])


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron trained with Adam and cross-entropy, early-stopped.

    Parameters:
        hidden_sizes: widths of the hidden layers (an int: one hidden layer).
        dropout: dropout after each hidden layer.
        lr, weight_decay: Adam settings.
        batch_size: mini-batch size.
        max_epochs: upper bound on epochs.
        patience: stop after this many epochs without a lower validation loss.
        validation_fraction: share of each class held out of ``fit``'s data for early
            stopping (0 disables early stopping: all ``max_epochs`` are run).
        seed: seeds initialisation, the validation split, shuffling and dropout.
        num_threads: torch CPU threads while fitting (restored afterwards); the default 1
            is fastest for a network this small, None leaves torch's setting alone.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``model_`` (the torch module),
    ``best_epoch_``, ``validation_indices_`` (positions in ``fit``'s ``X`` used for early
    stopping), ``history_`` (``{"train_loss": [...], "val_loss": [...]}``).
    """

    def __init__(
        self,
        hidden_sizes: int | tuple[int, ...] = (256,),
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 200,
        patience: int = 10,
        validation_fraction: float = 0.1,
        seed: int = 0,
        num_threads: int | None = 1,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.num_threads = num_threads

    def build_network(self, input_dim: int, num_classes: int) -> nn.Sequential:
        """The untrained network for these settings (also how a saved MLP is rebuilt)."""
        hidden = self.hidden_sizes
        sizes = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        return build_mlp(input_dim, sizes, num_classes, float(self.dropout))

    def fit(self, X: Any, y: Any) -> TorchMLPClassifier:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise InputError(f"MLP: X of shape {X.shape} does not match y of length {len(y)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InputError(
                f"MLP: validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InputError("MLP: need at least two classes to fit")
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.seed)
        if self.validation_fraction > 0:
            train_pos, val_pos = validation_split(y_idx, self.validation_fraction, rng)
        else:
            train_pos, val_pos = np.arange(len(y)), np.zeros(0, dtype=np.int64)
        self.validation_indices_ = val_pos
        xt = torch.from_numpy(X[train_pos])
        yt = torch.from_numpy(y_idx[train_pos].astype(np.int64))
        xv = torch.from_numpy(X[val_pos])
        yv = torch.from_numpy(y_idx[val_pos].astype(np.int64))
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            self._train(xt, yt, xv, yv)
        finally:
            torch.set_num_threads(threads)
        return self

    def _train(
        self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor
    ) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.build_network(xt.shape[1], len(self.classes_))
            opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            loss_fn = nn.CrossEntropyLoss()
            gen = torch.Generator().manual_seed(self.seed)
            best_loss, best_state, best_epoch, waited = np.inf, None, 0, 0
            history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
            for epoch in range(1, self.max_epochs + 1):
                model.train()
                perm = torch.randperm(len(xt), generator=gen)
                total = 0.0
                for start in range(0, len(xt), self.batch_size):
                    idx = perm[start : start + self.batch_size]
                    opt.zero_grad()
                    loss = loss_fn(model(xt[idx]), yt[idx])
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                history["train_loss"].append(total / len(xt))
                if len(xv) == 0:
                    best_epoch = epoch
                    continue
                model.eval()
                with torch.no_grad():
                    val_loss = float(loss_fn(model(xv), yv))
                history["val_loss"].append(val_loss)
                if val_loss < best_loss - 1e-6:
                    best_loss, best_epoch, waited = val_loss, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    waited += 1
                    if waited >= self.patience:
                        break
            if best_state is not None:
                model.load_state_dict(best_state)
        model.eval()
        self.model_ = model
        self.best_epoch_ = best_epoch
        self.history_ = history

    def _logits(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InputError(f"MLP: X has shape {X.shape}, expected (n, {self.n_features_in_})")
        self.model_.eval()
        with torch.no_grad():
            logits: torch.Tensor = self.model_(torch.from_numpy(X))
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        proba: np.ndarray = torch.softmax(self._logits(X), dim=1).numpy().astype(np.float64)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        idx = self._logits(X).argmax(dim=1).numpy()
        out: np.ndarray = self.classes_[idx]
        return out
