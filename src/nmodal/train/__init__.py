"""Training on pre-extracted features: splits by post and the training loop."""

from nmodal.train.splits import Split, split_posts
from nmodal.train.trainer import TrainConfig, TrainResult, evaluate_loss, train_model

__all__ = ["Split", "TrainConfig", "TrainResult", "evaluate_loss", "split_posts", "train_model"]
