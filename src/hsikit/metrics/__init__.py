"""hsikit.metrics."""
