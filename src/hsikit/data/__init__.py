"""hsikit.data."""
