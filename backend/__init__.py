"""dumpdeck engine: configuration, inventory, dumps, verification, jobs.

This package never imports textual or tui; the console and the CLI are
clients of it (tests/test_layers.py enforces the split).
"""

__version__ = "0.1.0"
