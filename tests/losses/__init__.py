"""Tests of nmodal.losses (mirrors the package layout)."""
