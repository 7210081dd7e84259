"""hsikit.models."""
