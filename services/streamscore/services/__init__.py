"""Runnable processes of streamscore: they wire the libs to Kafka, Redis, files and HTTP."""
