"""Training building blocks: the delay-aware split, the quality metrics, the examples layout.

Pure: arrays and tables in, arrays and numbers out; the trainer service
(:mod:`streamscore.services.trainer`) reads files and talks to MLflow.
"""
