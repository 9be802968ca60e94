"""Jobs a user runs: QA a folder, predict a catalogue, map a cube; in-process or on Dask."""
