"""The HTTP API: health, metrics, and authenticated administration of policies."""
