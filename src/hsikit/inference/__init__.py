"""hsikit.inference."""
