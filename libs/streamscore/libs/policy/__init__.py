"""The decision policy: versioned, declarative, separate from the model."""
