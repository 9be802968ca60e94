"""The sps layer stays light: no TensorFlow, no napari/Qt, pPXF only when fitting."""

from __future__ import annotations

import subprocess
import sys


def test_sps_modules_import_nothing_heavy():
    code = (
        "import sys\n"
        "import napari_galam.sps.library, napari_galam.sps.filters\n"
        "import napari_galam.sps.photometry, napari_galam.sps.reference_fit\n"
        "heavy = [m for m in ('tensorflow', 'napari', 'qtpy', 'magicgui', 'ppxf') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
