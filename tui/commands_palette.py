"""Command palette provider: every action of the current screen and the global ones, from the registry."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from .actions import ACTIONS, ActionSpec, key_label


class ActionsProvider(Provider):
    """Lists the registry's actions; hidden ones (read-only, wrong screen) are left out."""

    def _available(self) -> list[ActionSpec]:
        screen = self.screen
        scope = getattr(screen, "SCOPE", None)
        app = self.app
        out = []
        for spec in ACTIONS:
            if spec.scope not in ("app", scope):
                continue
            if spec.id == "palette":
                continue
            if getattr(app, "read_only", False) and spec.destructive:
                continue
            out.append(spec)
        return out

    def _run(self, spec: ActionSpec) -> None:
        target = self.screen
        self.app.call_later(target.run_action, spec.action)

    def _text(self, spec: ActionSpec) -> str:
        keymap = getattr(self.app, "keymap", {})
        return f"{spec.group}: {spec.description} · key {key_label(spec, keymap)}"

    async def discover(self) -> Hits:
        for spec in self._available():
            text = self._text(spec)
            yield DiscoveryHit(Content(text), partial(self._run, spec), text=text, help=spec.id)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec in self._available():
            text = self._text(spec)
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, spec), text=text, help=spec.id)
