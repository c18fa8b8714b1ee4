"""Shell niceties: bash and zsh completion and the man page, generated from the argparse tree; NO_COLOR=""."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def _dumpdeck(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def _bash_complete(script_path, words: list[str]) -> list[str]:
    """What bash's programmable completion offers for `words` (the last one being completed)."""
    line = " ".join(words)
    prog = (
        f"source {script_path}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; _shtab_dumpdeck dumpdeck "{words[-1]}" "{words[-2]}"; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completion_knows_commands_and_options(tmp_path):
    proc = _dumpdeck("completion", "bash")
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "dumpdeck.bash"
    script.write_text(proc.stdout)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert "schedule" in _bash_complete(script, ["dumpdeck", "sch"])
    assert set(_bash_complete(script, ["dumpdeck", "c"])) >= {"check", "clean", "config", "console", "completion"}
    assert "--systemd" in _bash_complete(script, ["dumpdeck", "schedule", "--sys"])
    assert "--json" in _bash_complete(script, ["dumpdeck", "check", "--js"])


def test_zsh_completion_parses(tmp_path):
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (scripts/bootstrap --test installs it)")
    proc = _dumpdeck("completion", "zsh")
    assert proc.returncode == 0 and proc.stdout.startswith("#compdef dumpdeck")
    script = tmp_path / "_dumpdeck"
    script.write_text(proc.stdout)
    check = subprocess.run([zsh, "-n", str(script)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    assert "schedule" in proc.stdout and "--systemd" in proc.stdout


def test_man_page_is_valid_roff_and_covers_every_command(tmp_path):
    proc = _dumpdeck("man")
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "dumpdeck.1"
    page.write_text(proc.stdout)
    assert proc.stdout.startswith(".TH DUMPDECK")
    proc.stdout.encode("ascii")  # roff input is ASCII; other characters are \[uXXXX] escapes
    groff = shutil.which("groff")
    if groff is not None:
        check = subprocess.run([groff, "-man", "-ww", "-z", str(page)], capture_output=True, text=True, check=False)
        assert check.returncode == 0 and check.stderr == "", check.stderr
    text = proc.stdout.replace("\\-", "-")
    for command in ("backup", "check", "schedule", "config", "completion", "restore-test", "job"):
        assert f"'dumpdeck {command}'" in text, command


def test_empty_no_color_is_ignored(monkeypatch):
    from dumpdeck.cli import output
    from dumpdeck.cli.main import normalise_environment

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "")
    assert output.use_color(Tty())
    normalise_environment()  # what `dumpdeck` does first: the console (Textual) would take "" as set
    assert "NO_COLOR" not in os.environ
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.use_color(Tty())
    normalise_environment()
    assert os.environ["NO_COLOR"] == "1"
