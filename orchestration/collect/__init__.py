"""First-party collection: the HTTP collector, the landing-segment loader, the stream worker."""
