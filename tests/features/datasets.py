"""Small real datasets for extraction tests: mp4/gif/png media and a posts table."""

from __future__ import annotations

from pathlib import Path

from nmodal.sources.posts import write_posts
from tests.helpers.media import write_corrupt, write_gif, write_image, write_video


def write_dataset(root: Path, num_videos: int = 6, broken: bool = True) -> Path:
    """A dataset dir with ``num_videos`` video posts (every other one with sound), a photo
    post, a text-only post, a GIF post and (``broken``) a post whose mp4 is garbage, plus
    one dropped post. Returns the dataset directory."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    posts: list[dict[str, object]] = []
    for i in range(num_videos):
        v = write_video(
            media / f"v{i}.mp4", num_frames=40 + 4 * i, audio=i % 2 == 0, audio_freq=300.0 + 50 * i
        )
        posts.append(
            {"post_id": f"ch/{i}", "account": "ch", "text": f"post number {i} with a few words",
             "video_path": str(v), "audio_path": str(v) if i % 2 == 0 else None, "status": "kept"}
        )  # fmt: skip
    photo = write_image(media / "photo.png", index=7)
    posts.append(
        {
            "post_id": "ch/photo",
            "account": "ch",
            "text": "a photo post with words",
            "image_path": str(photo),
            "status": "kept",
        }
    )
    posts.append(
        {
            "post_id": "ch/text",
            "account": "ch",
            "text": "only words in this post here",
            "status": "kept",
        }
    )
    gif = write_gif(media / "anim.gif", num_frames=24)
    posts.append(
        {"post_id": "ch/gif", "account": "ch", "text": "", "video_path": str(gif), "status": "kept"}
    )
    if broken:
        bad = write_corrupt(media / "broken.mp4", "garbage")
        posts.append(
            {
                "post_id": "ch/broken",
                "account": "ch",
                "text": "the video of this post is broken",
                "video_path": str(bad),
                "audio_path": str(bad),
                "status": "kept",
            }
        )
    posts.append(
        {
            "post_id": "ch/dropped",
            "account": "ch",
            "text": "too short",
            "status": "dropped",
            "reason": "text < 5 words",
        }
    )
    write_posts(posts, root)
    return root
