"""From feature-enriched events to decisions: model input, model, policy, reasons."""
