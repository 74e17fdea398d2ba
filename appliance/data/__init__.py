"""Datasets: readers, validation, lint, personal-data scrubbing (Presidio), canaries, versions."""
