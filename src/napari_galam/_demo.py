"""The demo scene: what ``galam demo`` opens and what the README's screenshot shows."""

from __future__ import annotations

from typing import Any

__all__ = ["open_demo", "PLUGIN_NAME"]

PLUGIN_NAME = "napari-galam"


def plugin_widget_names() -> list[str]:
    """Display names of every dock this plugin contributes, in manifest order."""
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest(PLUGIN_NAME)
    return [widget.display_name for widget in (manifest.contributions.widgets or [])]


def open_demo(viewer: Any = None) -> Any:
    """Open (or fill) a viewer with the demo data and every dock of the plugin."""
    import napari

    if viewer is None:
        viewer = napari.Viewer(title="napari-galam demo")
    viewer.window.resize(1600, 1000)
    viewer.open_sample(PLUGIN_NAME, "hubble_deep_field")
    viewer.open_sample(PLUGIN_NAME, "sdss_spectrum_ngc3522")
    for name in plugin_widget_names():
        viewer.window.add_plugin_dock_widget(PLUGIN_NAME, name)
    viewer.layers.selection.active = viewer.layers["Hubble Deep Field"]
    return viewer
