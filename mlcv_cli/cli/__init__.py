"""The `mlcv` command line: the Click group (app.py) and one module per command."""
