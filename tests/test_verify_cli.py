"""CLI: dumpdeck verify / restore-test / list / clean — checklists, --json, exit codes 0/1/2."""

from __future__ import annotations

import dataclasses
import json

from dumpdeck.backend.dump import dump_database
from dumpdeck.cli.main import main


def make_dump(config, db, compression="zstd"):
    backup = dataclasses.replace(config.backup, compression=compression)
    return dump_database(config.server("main"), backup, db).path


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_verify_cli(write_config, sample_db, capsys):
    cfg = write_config()
    from dumpdeck.backend.config import load_config

    path = make_dump(load_config(cfg), sample_db)
    rc, out, _ = run(capsys, "-c", str(cfg), "verify", str(path))
    assert rc == 0 and "✓ sha256" in out and "L3 content" in out and "passed level 3" in out
    rc, out, _ = run(capsys, "-c", str(cfg), "verify", "--latest", sample_db, "--level", "2", "--json")
    data = json.loads(out)
    assert rc == 0 and data["outcome"] == "passed" and data["level_reached"] == 2 and data["path"] == str(path)
    assert {c["level"] for c in data["checks"]} == {1, 2}
    # broken → 1
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    rc, out, _ = run(capsys, "-c", str(cfg), "verify", str(path))
    assert rc == 1 and "✗ sha256" in out and "failed at level 1" in out
    rc, out, _ = run(capsys, "-c", str(cfg), "verify", str(path), "--json")
    assert rc == 1 and json.loads(out)["outcome"] == "failed"
    # without its manifest the sha256 is not checked: the stream that does not decode fails at level 2
    stray = path.parent / "stray" / path.name
    stray.parent.mkdir()
    stray.write_bytes(path.read_bytes())
    rc, out, _ = run(capsys, "-c", str(cfg), "verify", str(stray), "--no-record")
    assert rc == 1 and "? sha256" in out and "failed at level 2 (stream): stream decodes" in out, out
    # usage errors → 2
    assert run(capsys, "-c", str(cfg), "verify")[0] == 2
    rc, _, err = run(capsys, "-c", str(cfg), "verify", str(path.parent / "nope.sql.zst"))
    assert rc == 2 and "no such file" in err
    rc, _, err = run(capsys, "-c", str(cfg), "verify", "--latest", "no_such_db")
    assert rc == 2 and "no dump of database 'no_such_db'" in err
    assert run(capsys, "-c", str(cfg), "verify", str(path), "--latest", sample_db)[0] == 2


def test_restore_test_cli_and_list(write_config, sample_db, capsys):
    cfg = write_config()
    from dumpdeck.backend.config import load_config

    path = make_dump(load_config(cfg), sample_db)
    rc, out, _ = run(capsys, "-c", str(cfg), "restore-test", "--latest", sample_db, "--target", "same", "--json")
    data = json.loads(out)
    assert rc == 0 and data["outcome"] == "passed" and data["level_reached"] == 4 and data["target"].startswith("same")
    rc, out, _ = run(capsys, "-c", str(cfg), "restore-test", str(path), "--target", "same", "-j", "1")
    assert rc == 0 and "✓ scratch dropped" in out and "passed level 4" in out
    rc, _, err = run(capsys, "-c", str(cfg), "restore-test", str(path), "--target", "nosuchserver")
    assert rc == 2 and "nosuchserver" in err
    (path.parent / "x.sql.zst.partial").write_bytes(b"x")
    rc, out, _ = run(capsys, "-c", str(cfg), "list")
    assert rc == 0 and sample_db in out and path.name in out and "leftover" in out
    rc, out, _ = run(capsys, "-c", str(cfg), "list", "--json", "--database", sample_db)
    data = json.loads(out)
    assert rc == 0 and data["dumps"][0]["verified_level"] == 4 and data["dumps"][0]["last_result"] == "passed"
    assert data["partials"][0]["live"] is False
    rc, out, _ = run(capsys, "-c", str(cfg), "clean", "--dry-run")
    assert rc == 0 and "would remove" in out and (path.parent / "x.sql.zst.partial").exists()
    rc, out, _ = run(capsys, "-c", str(cfg), "clean", "--scratch", "--json")
    data = json.loads(out)
    assert rc == 0 and data["partials_removed"] and data["scratch_dropped"] == {"main": []}
    assert not (path.parent / "x.sql.zst.partial").exists()


def test_failed_verify_from_the_cli_notifies_and_the_recovery_too(tmp_path, write_config, sample_db):
    """A verification run by hand is heard of like one inside a run: the failure, then the recovery."""
    import json as _json
    import subprocess as _sp
    import sys as _sys

    from dumpdeck.backend.config import load_config as _load
    from dumpdeck.backend.dump import dump_database as _dump

    from .test_notify import WebhookSink, notify_yaml

    with WebhookSink() as hook:
        cfg_path = write_config(notify_yaml(tmp_path, webhook_url=hook.url))
        config = _load(cfg_path)
        result = _dump(config.server("main"), config.backup, sample_db)
        good = result.path.read_bytes()
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        result.path.write_bytes(bytes(bad))
        cmd = [_sys.executable, "-m", "dumpdeck", "--config", str(cfg_path), "verify", str(result.path)]
        proc = _sp.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 1
        assert len(hook.bodies) == 1 and "[FAILED]" in _json.loads(hook.bodies[0])["text"]
        assert sample_db in _json.loads(hook.bodies[0])["text"]
        result.path.write_bytes(good)
        proc = _sp.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len(hook.bodies) == 2 and "[RECOVERED]" in _json.loads(hook.bodies[1])["text"]
