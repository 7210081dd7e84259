"""``python -m hsikit``: the same as the ``hsikit`` command."""

from hsikit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
