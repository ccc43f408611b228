"""Tiny random-init models of the paper's four architectures, saved like hub checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "hello",
    "world",
    "post",
    "a",
    "the",
    "##s",
    "video",
]


def write_tiny_models(root: Path) -> dict[str, Path]:
    """``{modality: directory}`` of save_pretrained checkpoints (config.json + safetensors)."""
    import transformers as tf

    torch.manual_seed(0)
    tf.utils.logging.disable_progress_bar()
    out = {m: root / m for m in ("text", "image", "video", "audio")}
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tok = tf.DistilBertTokenizer(vocab_file=str(root / "vocab.txt"))
    text_cfg = tf.DistilBertConfig(
        vocab_size=len(VOCAB),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
    )
    tf.DistilBertModel(text_cfg).save_pretrained(out["text"])
    tok.save_pretrained(out["text"])
    # mask_ratio stays at its pre-training default (0.75): the encoder must turn it off
    image_cfg = tf.ViTMAEConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    tf.ViTMAEModel(image_cfg).save_pretrained(out["image"])
    video_cfg = tf.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    tf.VideoMAEModel(video_cfg).save_pretrained(out["video"])
    audio_cfg = tf.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    tf.Wav2Vec2Model(audio_cfg).save_pretrained(out["audio"])
    return out
