"""What every machine-screen panel shares: a numbered border title, focus, maximize and hide."""

from __future__ import annotations

from typing import ClassVar, cast

from rich.style import Style
from textual.widget import Widget


class PanelMixin:
    """Mixed into each panel widget: number, title and the component-style helper."""

    PANEL_NUMBER: ClassVar[int] = 0
    """Shown in the border title; the number key toggles the panel."""
    PANEL_TITLE: ClassVar[str] = ""

    def panel_title(self, detail: str = "") -> str:
        """The border title: ``3 Trap timeline · detail``."""
        title = f"{self.PANEL_NUMBER} {self.PANEL_TITLE}"
        return f"{title} · {detail}" if detail else title

    def set_detail(self, detail: str) -> None:
        """Update the border title's detail text."""
        widget = cast(Widget, self)
        widget.border_title = self.panel_title(detail)

    def styles_for(self, *names: str) -> dict[str, Style]:
        """Rich styles of this widget's component classes, by short name (``code--pc`` -> ``pc``).

        Full (not partial) styles, so theme colours such as ``$text-muted`` ("auto") resolve against
        the panel's background, in light themes too.
        """
        assert isinstance(self, Widget)
        # Resolving component styles costs ~0.2 ms each and panels ask on every repaint: cache them until
        # Textual says this widget's styles changed (theme, focus, its or an ancestor's classes).
        key = names
        cache: dict[tuple[object, ...], dict[str, Style]] = self.__dict__.setdefault("_vizvm_panel_styles", {})
        styles = cache.get(key)
        if styles is None:
            styles = cache[key] = {name.split("--", 1)[1]: self.get_component_rich_style(name) for name in names}
        return styles

    def notify_style_update(self) -> None:
        """Textual recomputed this widget's styles: forget the cached component styles."""
        self.__dict__.pop("_vizvm_panel_styles", None)
        super().notify_style_update()  # type: ignore[misc]

    def highlight_for(self, name: str) -> Style:
        """Only the background and emphasis of a component class, to lay over differently coloured text."""
        assert isinstance(self, Widget)
        full = self.get_component_rich_style(name)
        return Style(bgcolor=full.bgcolor, bold=full.bold, reverse=full.reverse)
