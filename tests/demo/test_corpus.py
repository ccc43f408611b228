"""The demo corpus: vocabulary, planning, real decodable clips, determinism, resume, fallback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nmodal.demo import concepts as vocab
from nmodal.demo.assets import available_assets, render_glyph, speak
from nmodal.demo.corpus import (
    MIN_FRAMES,
    clip_is_valid,
    concept_groups,
    generate_corpus,
    plan_corpus,
    read_demo_corpus,
)
from nmodal.errors import InputError
from nmodal.media import load_audio, probe, sample_video

ASSETS = available_assets()
needs_font = pytest.mark.skipif(ASSETS.font is None, reason="fonts-noto-color-emoji missing")
needs_espeak = pytest.mark.skipif(ASSETS.espeak is None, reason="espeak-ng missing")


def test_concept_table_is_large_unique_and_grouped() -> None:
    table = vocab.concept_table()
    assert len(table) >= 150
    assert len({c.emoji for c in table}) == len(table)
    assert [c.index for c in table] == list(range(len(table)))
    assert set(vocab.STANCE) == set(vocab.ACCOUNTS)
    assert set(vocab.STANCE.values()) == {"living", "made"}
    per_account = {a: sum(c.account == a for c in table) for a in vocab.ACCOUNTS}
    assert min(per_account.values()) >= 20


def test_every_post_text_names_the_concept_and_passes_the_word_filter() -> None:
    table = vocab.concept_table()
    for lang in vocab.LANGUAGES:
        assert len(vocab.COLOUR_WORDS[lang]) == len(vocab.COLOURS)
        for concept in table:
            name = vocab.concept_name(concept.emoji, lang)
            assert name and ":" not in name and "_" not in name
            for template in range(len(vocab.TEMPLATES[lang])):
                for colour in vocab.COLOURS:
                    text = vocab.post_text(concept.emoji, lang, colour, template)
                    assert name in text
                    assert len(text.split()) >= 5, text


def test_concept_names_differ_across_languages() -> None:
    names = {vocab.concept_name("🦉", lang) for lang in vocab.LANGUAGES}
    assert "сова" in names and "owl" in names
    assert len(names) >= 12


@needs_font
def test_every_concept_has_a_colour_glyph_in_the_font() -> None:
    sizes, coloured = [], []
    for concept in vocab.concept_table():
        glyph = np.asarray(render_glyph(concept, ASSETS.font))
        opaque = glyph[..., 3] > 0
        assert opaque.sum() > 400, concept.emoji
        rgb = glyph[..., :3][opaque].astype(int)
        sizes.append(glyph.shape[0])
        coloured.append(np.abs(rgb - rgb.mean(axis=1, keepdims=True)).max() > 20)
    assert max(sizes) <= 160
    # colour emoji, not monochrome outlines (a few, like the wolf, are drawn in greys)
    assert np.mean(coloured) > 0.9


@needs_espeak
def test_speech_is_real_audio_in_the_text_language() -> None:
    ru = speak("Смотрите: сова на красном фоне", "ru", ASSETS.espeak)
    assert ru.dtype == np.float32 and len(ru) > 22050 // 2
    assert np.sqrt(np.mean(ru**2)) > 0.01
    en = speak("Look at this owl on a red background", "en", ASSETS.espeak)
    assert len(en) != len(ru) or not np.allclose(en, ru)


def test_plan_is_deterministic_and_seeded() -> None:
    a, b, c = plan_corpus(50, seed=3), plan_corpus(50, seed=3), plan_corpus(50, seed=4)
    assert a == b
    assert a != c
    assert len({p.post_id for p in a}) == 50
    table = vocab.concept_table()
    for p in a:
        concept = table[p.concept_id]
        assert (p.emoji, p.account, p.stance) == (concept.emoji, concept.account, concept.stance)
        assert vocab.concept_name(p.emoji, p.language) in p.text
        assert len(p.text.split()) >= 5
    assert [p.date for p in a] == sorted(p.date for p in a)
    rows = [p.manifest_row() for p in a]
    assert concept_groups(rows).tolist() == [p.concept_id for p in a]
    with pytest.raises(InputError):
        plan_corpus(0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "c"
    generate_corpus(root, num_posts=3, seed=7, workers=1, progress=False)
    return root


def test_clips_are_real_h264_with_speech_and_enough_frames(corpus: Path) -> None:
    rows = read_demo_corpus(corpus / "manifest.jsonl")
    assert len(rows) == 3
    for row in rows:
        path = corpus / row["video_path"]
        info = probe(path)
        assert info.video_codec == "h264" and info.audio_codec == "aac"
        assert info.num_frames >= 64 and (info.width, info.height) == (160, 160)
        assert abs(info.fps - 24) < 1e-6
        sample = sample_video(path, 16, seed=0)
        assert sample.frames.shape == (16, 160, 160, 3)
        assert sample.image_index not in sample.frame_indices.tolist()
        # the glyph moves: frames differ, and the held-out image is not a sampled frame
        assert np.abs(sample.frames[0].astype(int) - sample.frames[-1]).mean() > 1
        audio = load_audio(path, 16000)
        assert len(audio) >= 16000 * 2.9
        assert np.sqrt(np.mean(audio**2)) > 0.005  # speech (or tones), not silence
        assert len(row["text"].split()) >= 5
        assert row["account"] in vocab.ACCOUNTS and row["stance"] in ("living", "made")


@needs_font
def test_background_colour_matches_the_text(corpus: Path) -> None:
    for row in read_demo_corpus(corpus / "manifest.jsonl"):
        frame = sample_video(corpus / row["video_path"], 16).image.astype(float)
        corner = frame[:6, :6].reshape(-1, 3).mean(axis=0)
        target = np.asarray(vocab.COLOUR_RGB[row["colour"]], float)
        distances = {
            c: np.linalg.norm(corner - np.asarray(rgb)) for c, rgb in vocab.COLOUR_RGB.items()
        }
        # the corner may be covered by the glyph; the nearest colour must match otherwise
        if min(distances.values()) < 60:
            assert min(distances, key=distances.__getitem__) == row["colour"], (corner, target)


def test_generation_is_deterministic(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_corpus(again, num_posts=3, seed=7, workers=1, progress=False)
    assert (again / "manifest.jsonl").read_text() == (corpus / "manifest.jsonl").read_text()
    for row in read_demo_corpus(corpus / "manifest.jsonl"):
        a = sample_video(corpus / row["video_path"], 16).frames
        b = sample_video(again / row["video_path"], 16).frames
        assert np.array_equal(a, b)
        assert np.array_equal(
            load_audio(corpus / row["video_path"]), load_audio(again / row["video_path"])
        )


def test_resume_keeps_valid_clips_and_redoes_broken_ones(corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "resume"
    shutil.copytree(corpus, root)
    rows = read_demo_corpus(root / "manifest.jsonl")
    broken = root / rows[1]["video_path"]
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    assert not clip_is_valid(broken)
    mtime = (root / rows[0]["video_path"]).stat().st_mtime_ns
    info = generate_corpus(root, num_posts=3, seed=7, workers=1, progress=False)
    assert (info.written, info.kept) == (1, 2)
    assert clip_is_valid(broken, MIN_FRAMES)
    assert (root / rows[0]["video_path"]).stat().st_mtime_ns == mtime
    meta = json.loads((root / "corpus.json").read_text())
    assert meta["complete"] is True and meta["num_posts"] == 3


def test_other_settings_in_the_same_directory_are_refused(corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "other"
    shutil.copytree(corpus, root)
    with pytest.raises(InputError, match="other settings"):
        generate_corpus(root, num_posts=4, seed=7, workers=1, progress=False)


def test_procedural_fallback_warns_and_still_makes_valid_posts(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="procedural"):
        info = generate_corpus(
            tmp_path / "p", num_posts=2, seed=1, workers=1, use_real_assets=False, progress=False
        )
    assert info.assets.kind == "procedural"
    for row in read_demo_corpus(info.manifest):
        path = info.root / row["video_path"]
        assert clip_is_valid(path)
        assert np.sqrt(np.mean(load_audio(path) ** 2)) > 0.01
