"""Experiment configs: the schema and its checks, YAML loading and overrides, grids, the features section."""
