"""hsikit.viz."""
