"""hsikit.io."""
