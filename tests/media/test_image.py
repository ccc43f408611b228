"""load_image: modes, EXIF orientation, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nmodal.errors import MediaError
from nmodal.media import load_image
from tests.helpers.media import frame_pattern, read_frame_index, write_corrupt, write_image


@pytest.mark.parametrize(
    ("name", "mode"),
    [("a.jpg", "RGB"), ("a.png", "RGB"), ("b.png", "RGBA"), ("c.png", "P"), ("d.png", "L"),
     ("e.gif", "P"), ("f.webp", "RGB")],
)  # fmt: skip
def test_modes_to_rgb(tmp_path: Path, name: str, mode: str) -> None:
    img = load_image(write_image(tmp_path / name, mode=mode, index=77))
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert read_frame_index(img) == 77


def test_exif_orientation_applied(tmp_path: Path) -> None:
    # Orientation 6: the stored picture must be turned 90 degrees clockwise to view.
    img = load_image(write_image(tmp_path / "o.jpg", exif_orientation=6, index=9))
    assert img.shape == (64, 48, 3)
    assert read_frame_index(np.rot90(img, k=1)) == 9
    red = (img[..., 0] > 150) & (img[..., 1] < 100)
    assert red[:4, -6:].mean() > 0.8  # the top-left marker now sits top-right


def test_transparent_png_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[:, :6] = (0, 0, 255, 255)
    Image.fromarray(rgba).save(tmp_path / "t.png")
    img = load_image(tmp_path / "t.png")
    assert (img[:, :6] == (0, 0, 255)).all() and (img[:, 6:] == 255).all()


def test_max_side(tmp_path: Path) -> None:
    Image.fromarray(np.tile(frame_pattern(3), (10, 10, 1))).save(tmp_path / "big.jpg")
    img = load_image(tmp_path / "big.jpg", max_side=100)
    assert max(img.shape[:2]) == 100 and img.shape[1] / img.shape[0] == pytest.approx(
        640 / 480, rel=0.02
    )


def test_broken_images(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not an image file"):
        load_image(write_corrupt(tmp_path / "x.jpg", "text"))
    with pytest.raises(MediaError, match="empty file"):
        load_image(write_corrupt(tmp_path / "y.jpg", "empty"))
    good = write_image(tmp_path / "z.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(MediaError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.png")
