"""The scenario reference in docs/ is generated from the schema; it must match the code."""

from pathlib import Path

from sim.schema_doc import render


def test_scenario_reference_is_up_to_date():
    committed = (Path(__file__).parent.parent / "docs" / "scenarios.md").read_text()
    assert committed == render(), "regenerate: python -m sim.schema_doc > docs/scenarios.md"
