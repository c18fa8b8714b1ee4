"""dumpdeck front doors: the argparse CLI and the Textual console."""
