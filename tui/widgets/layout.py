"""Breakpoint classes applied at mount and resume, not only on a Resize event.

Textual sets HORIZONTAL_BREAKPOINTS classes when a screen receives a Resize; a
screen pushed at an unchanged terminal size may not get one, and would keep its
default (wide) layout at 80 columns.
"""

from __future__ import annotations


def apply_breakpoints(screen) -> None:
    width = screen.app.size.width
    points = screen.HORIZONTAL_BREAKPOINTS or []
    chosen = None
    for threshold, name in sorted(points):
        if width >= threshold:
            chosen = name
    screen.update_classes({name: name == chosen for _, name in points}, animate=False)
