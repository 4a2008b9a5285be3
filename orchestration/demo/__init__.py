"""Demo and test data: a deterministic, adversarial generator of the source tables, and the
shapes they can be landed in (typed, Segment, RudderStack)."""
