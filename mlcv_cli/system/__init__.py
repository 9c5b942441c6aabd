"""What any layer may use and that knows nothing of ML: files, locks, output, progress, signals, threads, memory, the Dask cluster."""
