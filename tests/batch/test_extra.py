"""pyarrow and zarr come with the ``batch`` extra: without them extraction says what to install, and the rest
of featuremaps does not need them."""

from __future__ import annotations

import subprocess
import sys

import pytest

_WITHOUT = "import sys; sys.modules['pyarrow'] = None; sys.modules['zarr'] = None\n"


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITHOUT + code], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_extract_without_pyarrow_says_which_extra_to_install(tmp_path):
    done = _run("from featuremaps.cli import main\n"
                "sys.exit(main(['extract', 'sample:cat', '--model', 'builtin:shapes', '--layers', 'pool1', "
                "'-o', 'store']))", tmp_path)
    assert done.returncode != 0
    assert "dataset extraction (its store's tables) needs pyarrow, which is not installed: pip install " \
           "'featuremaps[batch]'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "store").exists()


def test_everything_else_runs_without_pyarrow_and_zarr(tmp_path):
    done = _run("import featuremaps as fm\n"
                "model = fm.load_model('builtin:shapes')\n"
                "maps = fm.extract(model, 'sample:cat', layers='pool1')\n"
                "found = fm.predict(model, ['sample:cat'])\n"
                "assert 'pyarrow' not in sys.modules or sys.modules['pyarrow'] is None\n"
                "print(tuple(maps['pool1'].shape), found[0].labels[0][0])", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("(")


@pytest.mark.parametrize("module", ["pyarrow", "zarr"])
def test_the_batch_extra_declares_them(module):
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith(module) for dep in project["dependencies"])
    assert any(dep.startswith(module) for dep in project["optional-dependencies"]["batch"])
