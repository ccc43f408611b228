"""Training on pre-extracted features: splits by post, the training loop, and what a model
folder records beside its weights (split, history)."""

from nmodal.train.record import recorded_split, save_trained, training_overlap
from nmodal.train.splits import Split, split_posts, split_trainable, trainable_posts
from nmodal.train.trainer import TrainConfig, TrainResult, evaluate_loss, train_model

__all__ = [
    "Split",
    "TrainConfig",
    "TrainResult",
    "evaluate_loss",
    "recorded_split",
    "save_trained",
    "split_posts",
    "split_trainable",
    "train_model",
    "trainable_posts",
    "training_overlap",
]
