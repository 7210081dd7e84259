"""hsikit.losses."""
