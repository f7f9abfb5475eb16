"""Sweep orchestrator: a YAML grid of vLLM engine configs, one Ray actor (hosting one server) per trial.

``search/`` decides what to try; this package decides where and how it runs.
"""
