"""Experiment configurations (ml_collections); see default.py for every key."""
