"""Sweep orchestrator: one spec, one pipeline (plan -> prune -> execute -> report), one Ray actor per trial.

``search/`` decides what to try; this package decides where and how it runs.
"""
