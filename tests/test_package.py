"""Package-level promises: no TensorFlow on import, a valid manifest, a working CLI."""

from __future__ import annotations

import subprocess
import sys

from napari_galam.cli import main


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, napari_galam, napari_galam._reader, napari_galam._sample_data, "
        "napari_galam.cli; napari_galam.cli.build_parser(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
        "assert 'napari' not in sys.modules, 'napari imported by the reader'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_manifest_is_valid() -> None:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-galam")
    manifest.validate_imports()
    widget_names = [w.display_name for w in manifest.contributions.widgets]
    assert "Spectrum" in widget_names
    assert {s.key for s in manifest.contributions.sample_data} >= {
        "hubble_deep_field",
        "sdss_spectrum_ngc3522",
        "sdss_spectrum_ngc4636",
    }


def test_cli_help_and_errors(capsys) -> None:
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "demo" in out
    result = subprocess.run(
        [sys.executable, "-m", "napari_galam.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "galam" in result.stdout
