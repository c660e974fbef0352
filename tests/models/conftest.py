"""Fixtures of the model tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """The Hugging Face Hub at a closed port on 127.0.0.1 (no request leaves this machine) and its cache in an
    empty temp folder, which is returned."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"
