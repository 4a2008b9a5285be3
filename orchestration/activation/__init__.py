"""Activation: diffing audiences against what was last sent, and syncing them to destinations."""
