"""Training of CoD-Lite models."""
