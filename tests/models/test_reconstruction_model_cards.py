"""The model-card tables in the MST++ and CNN-baseline docstrings are the numbers model_card measures."""

from __future__ import annotations

import re

import pytest

from hsikit.models import create_model
from hsikit.models.complexity import model_card
from hsikit.models.reconstruction import hscnn, mst_plus_plus

ROW = re.compile(r"^(\d+) × (\d+)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+) / ([\d.]+)$", re.MULTILINE)


@pytest.mark.parametrize(("name", "module"), [("mst_plus_plus", mst_plus_plus), ("hscnn_r", hscnn)])
def test_docstring_model_card_matches_the_flop_counter(name: str, module: object) -> None:
    rows = ROW.findall(module.__doc__ or "")
    assert len(rows) == 2, "the docstring must hold the 256 x 256 and 482 x 512 rows"
    card = model_card(create_model(name), sizes=[(int(h), int(w)) for h, w, *_ in rows])
    for height, width, parameters, gflops, gmacs, gmacs_binary in rows:
        measured = card["sizes"][f"{height}x{width}"]
        assert int(parameters.replace(",", "")) == card["parameters"]
        assert float(gflops) == pytest.approx(measured["gflops"], abs=0.005)
        assert float(gmacs) == pytest.approx(measured["gmacs"], abs=0.005)
        assert float(gmacs_binary) == pytest.approx(measured["gmacs_binary"], abs=0.005)
