"""The HTML status page: sections, escaping, self-containment, and a real render in headless Chromium
(screenshot kept under tests/artifacts/)."""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import report
from dumpdeck.backend.config import load_config
from dumpdeck.backend.naming import dump_basename, safe_name
from dumpdeck.backend.state import DbProgress, StateStore

EVIL = "<script>alert(1)</script>"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- synthetic backups


def offline_config(tmp_path: Path, extra: str = "") -> Path:
    """A config whose server need not exist: the report reads only disks and the state store."""
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        servers:
          main:
            socket: {tmp_path}/nowhere.sock
            user: root
        backup:
          dir: {tmp_path}/backups
        state_dir: {tmp_path}/state
        retention:
          keep_last: 7
          daily: 7
        report:
          refresh: 2m
        """)
        + textwrap.dedent(extra)
    )
    return path


def synth_dump(
    backup_dir: Path,
    server: str,
    db: str,
    when: datetime,
    *,
    raw: int,
    stored: int,
    duration: float,
    verified: list[tuple[int, bool]] = (),
    flags=(),
) -> Path:
    d = backup_dir / server / safe_name(db)
    d.mkdir(parents=True, exist_ok=True)
    path = d / dump_basename(db, when, ".zst")
    path.write_bytes(b"\0" * stored)
    m = manifest_mod.Manifest(
        database=db,
        server={"name": server, "host": "db1:3306", "flavour": "mariadb", "version": "10.11"},
        tool={"path": "/usr/bin/mariadb-dump", "version": "10.19"},
        options=[],
        started=when.isoformat(timespec="seconds"),
        finished=(when + timedelta(seconds=duration)).isoformat(timespec="seconds"),
        duration=duration,
        bytes_raw=raw,
        bytes_stored=stored,
        codec="zstd",
        level=3,
        sha256="0" * 64,
        file=path.name,
        flags=list(flags),
        verifications=[
            manifest_mod.Verification(level=lv, outcome=ok, at=(when + timedelta(minutes=5)).isoformat())
            for lv, ok in verified
        ],
    )
    manifest_mod.save(m, path)
    return path


def populate(tmp_path: Path) -> Path:
    """Ten nights of `shop` (growing, verified), `crm` (last one small), the evil name, and runs."""
    backups = tmp_path / "backups"
    for i in range(10):
        when = NOW - timedelta(days=10 - i, hours=-2)
        synth_dump(
            backups,
            "main",
            "shop",
            when,
            raw=100_000_000 + i * 5_000_000,
            stored=2000 + i * 100,
            duration=60 + i * 3,
            verified=[(1, True), (2, True)] if i == 9 else [],
        )
        synth_dump(
            backups,
            "main",
            "crm",
            when,
            raw=30_000_000 if i < 9 else 9_000_000,
            stored=900,
            duration=20,
            flags=["small"] if i == 9 else [],
        )
    synth_dump(backups, "main", EVIL, NOW - timedelta(hours=3), raw=1000, stored=100, duration=1)
    with StateStore.open(tmp_path / "state" / "state.db") as store:
        ok = store.create_run("nightly", "cron", "main", ["shop", "crm"])
        store.finish_run(ok.id, "succeeded", "2 of 2 databases dumped")
        bad = store.create_run("nightly", "cron", "main", ["shop", EVIL])
        store.set_progress(DbProgress(bad.id, EVIL, status="failed", error=f"Unknown database '{EVIL}'"))
        store.finish_run(bad.id, "failed", f"1 of 2 failed: {EVIL} & friends")
    return backups


class DomScan(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        self.text.append(data)


def scan(html_text: str) -> DomScan:
    s = DomScan()
    s.feed(html_text)
    return s


# --------------------------------------------------------------------------- unit: render


def test_page_has_sections_facts_and_is_self_contained(tmp_path):
    populate(tmp_path)
    config = load_config(offline_config(tmp_path))
    with StateStore.open(config.state_db) as store:
        page = report.render(report.collect(config, store, now=NOW))
    dom = scan(page)
    ids = {a.get("id") for _, a in dom.tags}
    assert {"summary", "databases", "disk", "runs"} <= ids
    assert '<meta http-equiv="refresh" content="120">' in page
    # no scripts, no external anything
    assert dom.scripts == []
    for tag, attrs in dom.tags:
        for k in ("src", "href", "action"):
            assert k not in attrs, f"<{tag} {k}=...> would load an external asset"
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", page)
    text = " ".join(dom.text)
    for fact in (
        "shop",
        "crm",
        "level 2",
        "not verified",
        "keep_last 7, daily 7",
        "10 dumps",
        "next prune deletes 3",
        "Disk usage",
        "Recent runs",
        "succeeded",
        "failed",
    ):
        assert fact in text, fact
    assert text.count("small") >= 1  # the trend flag of crm
    assert page.count("<svg") >= 4  # size + duration sparklines
    # failures highlighted: the failed run row and the failing database row carry the class
    assert re.search(r'<tr class="run failed">', page)
    assert re.search(r'<tr class="db failed" data-database="&lt;script&gt;', page)


def test_every_outside_string_is_escaped(tmp_path):
    populate(tmp_path)
    config = load_config(offline_config(tmp_path))
    with StateStore.open(config.state_db) as store:
        page = report.render(report.collect(config, store, now=NOW))
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp; friends" in page


def test_sparkline_shape():
    svg = report.sparkline([1, 2, 3, 2])
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert svg.startswith("<svg") and len(points) == 4
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[2] < ys[1] < ys[0] and ys[3] == ys[1]  # higher value, higher on the page
    assert "<title>" in svg and "min 1 B" in svg
    assert "no history" in report.sparkline([])


def test_report_command_writes_the_file(tmp_path, capsys):
    from dumpdeck.cli.main import main

    populate(tmp_path)
    cfg = offline_config(tmp_path)
    out = tmp_path / "out" / "status.html"
    assert main(["--config", str(cfg), "report", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "Backup status" in out.read_text()
    # default location: <state_dir>/report.html
    assert main(["--config", str(cfg), "report"]) == 0
    assert (tmp_path / "state" / "report.html").exists()


# --------------------------------------------------------------------------- a real browser


def chromium() -> str:
    path = "/usr/bin/chromium"
    if not os.path.exists(path):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(
                "chromium is missing and cannot be installed here (needs root and apt-get): apt-get install -y chromium"
            )
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env)
            r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, env=env)
        if r.returncode != 0 or not os.path.exists(path):
            pytest.skip(f"apt-get install -y chromium failed: {r.stderr.strip()[-300:]}")
    return path


def run_chromium(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1600",
        *mode,
        page.as_uri(),
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path / "home"))
    )


def test_status_page_in_headless_chromium(tmp_path):
    populate(tmp_path)
    config = load_config(offline_config(tmp_path))
    page = report.write_report(config, now=NOW)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    r = run_chromium(page, tmp_path, f"--screenshot={shot}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    r = run_chromium(page, tmp_path, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom_html = r.stdout
    dom = scan(dom_html)
    ids = {a.get("id") for _, a in dom.tags}
    assert {"summary", "check", "databases", "disk", "runs"} <= ids, ids
    headings = re.findall(r"<h2>(.*?)</h2>", dom_html)
    assert headings == ["Databases", "Disk usage", "Recent runs"]
    # the evil database name is text in the rendered DOM, never a script element
    assert not any("alert(1)" in s for s in dom.scripts)
    assert [t for t, _ in dom.tags].count("script") == 0
    assert EVIL in "".join(dom.text)
    names = re.findall(r'<strong class="dbname">(.*?)</strong>', dom_html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in names and "shop" in names and "crm" in names
    assert dom_html.count("<svg") >= 4
