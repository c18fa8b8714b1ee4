from backend.dump import dump_database


def test_sandbox_dump(config, sample_db):
    r = dump_database(config.server("main"), config.backup, sample_db)
    assert r.path.exists() and r.manifest.bytes_raw > 0
