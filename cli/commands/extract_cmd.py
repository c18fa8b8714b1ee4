"""`dumpdeck extract DUMP | --latest DB --table T [-o FILE]`: one table's DDL and data, streamed.

The dump is decoded as a stream (nothing decompressed to disk); the output is plain SQL on
stdout, or FILE compressed by its extension (.zst, .gz, .xz; anything else plain), written as
FILE.partial and renamed when complete. The result loads on its own:
`mariadb DB < FILE` (or `zstd -dc FILE | mariadb DB`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.codecs import HashingSink, codec_for_path, make_encoder
from dumpdeck.backend.errors import DumpdeckError, ManifestError, StreamError, UsageError
from dumpdeck.backend.loader import decoded_chunks
from dumpdeck.backend.rewrite import extract_table
from dumpdeck.backend.units import format_bytes

from ..options import add_identity_option
from ..output import print_json
from .verify_cmd import add_target_args, resolve_file


def register(sub) -> None:
    p = sub.add_parser(
        "extract",
        help="stream one table's DDL and data out of a dump (plain or compressed SQL)",
        description="Write one table of a dump (CREATE TABLE, its rows, its triggers) as SQL that loads on its "
        "own, decoding the dump as a stream: nothing is decompressed to disk.",
        epilog="exit codes: 0 written, 1 the table is not in the dump or the dump does not decode, 2 usage error",
    )
    add_target_args(p)
    p.add_argument("--table", "-T", required=True, metavar="T", help="the table to extract")
    p.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here (.zst/.gz/.xz compress); default stdout"
    )
    p.add_argument("--json", action="store_true", help="with -o: a machine-readable summary on stdout")
    add_identity_option(p)
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    path = resolve_file(args, ctx)
    codec_in = None
    with contextlib.suppress(ManifestError):
        if manifest_mod.manifest_path(path).exists():
            codec_in = manifest_mod.load(path).codec
    if args.output is None:
        if args.json:
            raise UsageError("--json needs -o FILE (stdout carries the SQL)")
        out = sys.stdout.buffer
        try:
            info = extract_table(decoded_chunks(path, codec_in), args.table, out.write)
            out.flush()
        except StreamError as exc:
            raise DumpdeckError(f"{path.name}: {exc}") from None
        except BrokenPipeError:
            return 0
        return 0
    target = args.output
    if target.exists() and target.is_dir():
        raise UsageError(f"-o {target}: is a directory")
    codec = codec_for_path(target)
    partial = Path(str(target) + ".partial")
    ok = False
    try:
        with open(partial, "wb") as f:
            sink = HashingSink(f)
            enc = make_encoder(codec, 3, 0, sink)
            try:
                info = extract_table(decoded_chunks(path, codec_in), args.table, enc.write)
                enc.close()
            except BaseException:
                enc.abort()
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
        ok = True
    except OSError as exc:
        raise UsageError(f"-o {target}: {exc.strerror or exc}") from None
    except StreamError as exc:
        raise DumpdeckError(f"{path.name}: {exc}") from None
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                partial.unlink()
    if args.json:
        print_json({"table": args.table, "file": str(target), "codec": codec, **info})
    else:
        sys.stderr.write(
            f"table `{args.table}`: {format_bytes(info['bytes'])} of SQL, {info['statements']} statements "
            f"→ {target} ({codec})\n"
        )
    return 0
