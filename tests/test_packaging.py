"""The wheel installs one namespace, `dumpdeck`, with every module of the repository's package folders."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("dumpdeck", "backend", "cli", "tui", "demo", "themes")


# what a clean checkout does not hold: a stale build/lib would otherwise end up in the wheel
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)


def build_wheel(dest: Path) -> Path:
    """Build the wheel from a clean copy of the checkout; returns its path in `dest`."""
    source = dest / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next(dest.glob("dumpdeck-*.whl"))


def test_wheel_ships_every_module_under_one_namespace(tmp_path):
    wheel = build_wheel(tmp_path)
    zf = zipfile.ZipFile(wheel)
    names = set(zf.namelist())
    expected = set()
    for folder in FOLDERS:
        for source in (ROOT / folder).rglob("*"):
            if source.suffix in (".py", ".tcss") and "__pycache__" not in source.parts:
                rel = source.relative_to(ROOT / folder).as_posix()
                expected.add(f"dumpdeck/{rel}" if folder == "dumpdeck" else f"dumpdeck/{folder}/{rel}")
    missing = sorted(expected - names)
    assert not missing, f"missing from {wheel.name}: {missing}"
    packaged = {n.split("/", 1)[0] for n in names if not n.startswith("dumpdeck-")}
    assert packaged == {"dumpdeck"}, f"top-level entries besides dumpdeck: {packaged}"
    top_level = next((n for n in names if n.endswith("top_level.txt")), None)
    if top_level is not None:
        assert zf.read(top_level).decode().split() == ["dumpdeck"]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dumpdeck = dumpdeck.cli.main:main" in zf.read(entry).decode()
