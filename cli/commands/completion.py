"""`dumpdeck completion bash|zsh` and `dumpdeck man`: shell completion and the manual page, generated
from the argparse tree itself (shtab, argparse-manpage), so they never fall behind the commands."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "completion",
        help="print a bash or zsh completion script",
        description="Print the completion script for a shell, generated from dumpdeck's own argument parser.",
        epilog="bash: dumpdeck completion bash > ~/.local/share/bash-completion/completions/dumpdeck\n"
        "zsh:  dumpdeck completion zsh > ~/.zfunc/_dumpdeck  (with fpath+=(~/.zfunc) before compinit)",
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=run_completion)
    m = sub.add_parser(
        "man",
        help="print the manual page (roff)",
        description="Print dumpdeck(1), generated from the argument parser: "
        "dumpdeck man > ~/.local/share/man/man1/dumpdeck.1 && man dumpdeck",
    )
    m.set_defaults(func=run_man)


def run_completion(args, ctx) -> int:
    import shtab

    sys.stdout.write(shtab.complete(ctx.parser, shell=args.shell))
    return 0


def manpage(parser) -> str:
    from build_manpages.manpage import Manpage  # type: ignore[import-untyped]

    from dumpdeck import __version__

    page = Manpage(parser, format="pretty")
    text = str(page)
    text = text.replace('"Generated Python Manual"', f'"dumpdeck {__version__}"', 1)
    # roff is ASCII: other characters as groff's \[uXXXX] escapes
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def run_man(args, ctx) -> int:
    sys.stdout.write(manpage(ctx.parser))
    return 0
