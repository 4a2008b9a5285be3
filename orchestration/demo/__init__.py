"""Demo and test data: a deterministic, adversarial generator of the eight source tables."""
