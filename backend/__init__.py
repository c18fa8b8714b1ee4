"""dumpdeck engine: configuration, inventory, dumps, verification, jobs, retention, notification.

This package never imports textual or the console; the CLI and the console are
clients of it (an import-linter contract and tests/test_layers.py enforce the split).
"""
