"""``galam demo``: open napari with the plugin's docks on the built-in demo data.

With no display (a server, CI) the same demo runs under Xvfb, saves a screenshot of the
whole window and exits 0, so a person can look at what the plugin shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from napari_galam.errors import GalamError

__all__ = ["add_parser", "run", "has_display"]

#: Size of the virtual screen used when there is no display.
XVFB_SCREEN = "1600x1200x24"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="open napari with the plugin's docks and the demo data",
        description=(
            "Open napari with the Hubble Deep Field, a real SDSS spectrum and the plugin's "
            "docks. Without a display it runs under Xvfb, writes a screenshot and exits."
        ),
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        help="save a screenshot of the window here (default without a display: demo.png)",
    )
    parser.add_argument(
        "--quit", action="store_true", help="exit after the screenshot instead of staying open"
    )
    parser.set_defaults(func=run)


def has_display() -> bool:
    """True when Qt can open a window: X11/Wayland display or a non-window platform."""
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal", "vnc"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _rerun_under_xvfb(screenshot: Path) -> int:
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        raise GalamError(
            "no display and no xvfb-run to make one; install Xvfb "
            "(apt-get install xvfb xauth) or run on a desktop."
        )
    command = [
        xvfb_run,
        "-a",
        "-s",
        f"-screen 0 {XVFB_SCREEN}",
        sys.executable,
        "-m",
        "napari_galam.cli",
        "demo",
        "--screenshot",
        str(screenshot),
        "--quit",
    ]
    return subprocess.call(command)


def run(args: argparse.Namespace) -> int:
    """Run the demo (re-executing under Xvfb when there is no display)."""
    if not has_display():
        screenshot = (args.screenshot or Path("demo.png")).resolve()
        status = _rerun_under_xvfb(screenshot)
        if status == 0:
            print(f"galam demo: no display, ran under Xvfb; screenshot written to {screenshot}")
        return status

    import napari

    from napari_galam._demo import open_demo

    viewer = open_demo()
    if args.screenshot is not None:
        path = args.screenshot.resolve()
        from qtpy.QtCore import QTimer

        def _shoot() -> None:
            viewer.reset_view()
            viewer.screenshot(str(path), canvas_only=False, flash=False)
            print(f"galam demo: screenshot written to {path}")
            if args.quit:
                viewer.close()

        QTimer.singleShot(1500, _shoot)
        if args.quit:
            napari.run()
            return 0
    napari.run()
    return 0
