"""Shared test settings: hypothesis profiles, the real CLI entry point, and Debian's Chromium driven by
Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

FEATUREMAPS = Path(sys.executable).parent / "featuremaps"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


@pytest.fixture
def run_cli():
    """Run the installed ``featuremaps`` console script; returns CompletedProcess."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FEATUREMAPS), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
        )

    return run


@pytest.fixture
def require():
    """``require("timm")`` imports an optional dependency: skips without it here, but fails under CI,
    which installs everything (so a CI without it cannot be green by skipping)."""

    def load(module: str):
        try:
            return __import__(module)
        except ImportError:
            if os.environ.get("CI"):
                pytest.fail(f"CI must install {module} (the test extra does)")
            pytest.skip(f"{module} is not installed")

    return load


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (.ci/run does: apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield instance
        instance.close()
