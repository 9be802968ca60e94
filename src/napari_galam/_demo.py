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


#: A bright elliptical galaxy of the Hubble Deep Field (row, column) that the demo
#: runs the Galaxy QA on, so the screenshot shows its ellipse, peaks and model input.
#: (578, 754), just below it, is the field's brightest star, with diffraction spikes.
DEMO_GALAXY = (473.0, 727.0)


def open_demo(viewer: Any = None) -> Any:
    """Open (or fill) a viewer with the demo data and every dock of the plugin.

    The Spectrum dock comes first; the Galaxy QA dock (run on one galaxy of the Hubble
    Deep Field) shares a tabbed area below it with the other docks, in front.
    """
    import napari

    if viewer is None:
        viewer = napari.Viewer(title="napari-galam demo")
    viewer.window.resize(1600, 1000)
    viewer.open_sample(PLUGIN_NAME, "hubble_deep_field")
    viewer.open_sample(PLUGIN_NAME, "sdss_spectrum_ngc3522")
    names = plugin_widget_names()
    # Spectrum on top; the others tabbed below it, the last added (Galaxy QA) in front
    ordered = [n for n in names if n != "Galaxy QA"] + [n for n in names if n == "Galaxy QA"]
    docks = {}
    for index, name in enumerate(ordered):
        docks[name] = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, name, tabify=index > 1)
    viewer.layers.selection.active = viewer.layers["Hubble Deep Field"]
    if "Galaxy QA" in docks:
        qa = docks["Galaxy QA"][1]
        qa.pick_galaxy(*DEMO_GALAXY)
        qa.jobs.wait()  # the screenshot shows the finished QA
        viewer.layers.selection.active = viewer.layers["Hubble Deep Field"]
    viewer.reset_view()  # the docks took width from the canvas: fit the field again
    return viewer
