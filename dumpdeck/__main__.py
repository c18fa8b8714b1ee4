"""`python -m dumpdeck`: the same entry point as the installed `dumpdeck` command."""

import sys

from dumpdeck.cli.main import main

sys.exit(main())
