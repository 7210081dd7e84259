"""hsikit.tasks."""
