"""CLI subcommands. Each module here defines `register(subparsers)`; cli.py finds them all.

A module adds its parsers with `parser.set_defaults(func=run)`, where
`run(args, ctx) -> int` returns the exit code. Keep logic in backend/; a
command parses arguments, calls the backend and prints.
"""
