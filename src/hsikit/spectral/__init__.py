"""hsikit.spectral."""
