"""hsikit.engine."""
