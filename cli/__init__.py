"""The `dumpdeck` command: the argparse front door (main.py) and one module per subcommand (commands/).

Cron, systemd units and detached runs start it as the installed `dumpdeck` entry point or `python -m dumpdeck`.
"""
