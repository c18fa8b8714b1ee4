"""A non-editable install ships every package and the themes; the console script is declared."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_packages_and_themes(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("dumpdeck-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("backend/dump.py", "backend/config.py", "tui/cli.py", "themes/__init__.py"):
        assert module in names, f"{module} missing from {wheel.name}"
    tcss = [n for n in names if n.startswith("themes/") and n.endswith(".tcss")]
    assert tcss, "no stylesheet under themes/ in the wheel"
    for source in (ROOT / "themes").glob("*.tcss"):
        assert f"themes/{source.name}" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dumpdeck = tui.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_textual_is_pinned_exactly():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"textual==8.2.8"' in text
