"""Helpers shared by the test packages: real media files written with PyAV and Pillow
(tests.helpers.media) and the headless Chromium used by browser tests (tests.helpers.chromium)."""
