"""nmodal: N-modal CLIP models for social-media posts.

Frozen encoders turn each artifact of a post (text, image, video, audio, ...) into a
feature vector; small projection heads trained with an N-modal contrastive or triplet loss
map every modality into one shared space. See DESIGN.md for the pipeline.
"""

__version__ = "0.1.0"
