"""Run directories: their files and status, checkpoints, input fingerprints, listing and diff."""
