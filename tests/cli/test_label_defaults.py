"""`marketplace label` passes only the options given; the defaults its help states are the library's."""

from __future__ import annotations

import re

import typer.main

from marketplace.cli.app import app
from marketplace.valuation.config import LinFiKConfig


def test_label_help_states_the_library_defaults() -> None:
    command = typer.main.get_command(app).commands["label"]  # type: ignore[attr-defined]
    helps = {p.name: getattr(p, "help", "") or "" for p in command.params}
    lib = LinFiKConfig()
    numeric = {"rank_in": lib.projection.rank_in, "rank_out": lib.projection.rank_out,
               "damping": lib.damping_ratio, "eta": lib.eta, "max_length": lib.max_length}
    for name, value in numeric.items():
        stated = re.search(r"default ([0-9.e+-]+)\)", helps[name])
        assert stated is not None and float(stated.group(1)) == value, (name, helps[name])
    named = {"preconditioner": lib.preconditioner, "weighting": lib.weighting, "reference": lib.reference,
             "store_dtype": lib.store_dtype}
    for name, word in named.items():
        assert re.search(rf"\b{word} \(the default", helps[name]), (name, helps[name])
    assert lib.cosine and "(the default)" in helps["cosine"]
    # every label option defaults to "not given", so LinFiKConfig fills it
    assert all(p.default is None for p in command.params if p.name in {*numeric, *named, "cosine"})
