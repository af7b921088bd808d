"""The scenario reference in docs/ is generated from the schema; it must match the code."""

import re
from pathlib import Path

from sim.schema_doc import render


def test_scenario_reference_is_up_to_date():
    committed = (Path(__file__).parent.parent / "docs" / "scenarios.md").read_text()
    assert committed == render(), "regenerate: python -m sim.schema_doc > docs/scenarios.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_citations_point_inside_the_repository():
    """Code, catalog, scenarios and docs cite docs/references.md (whose sections name public sources), never
    notes outside this repository; every cited section exists."""
    root = Path(__file__).parent.parent
    outside = re.compile(r"shared/reference|vllm_gpu_tpu_facts|seed_harness\.md|vllm_cpu_live_server|facts §")
    references = (root / "docs" / "references.md").read_text()
    anchors = {_anchor(line[3:]) for line in references.splitlines() if line.startswith("## ")}
    cited = re.compile(r"references\.md#([a-z0-9\-]+)")
    bad, missing = [], []
    for folder in ("sim", "calibrate", "kernels", "scenarios", "docs", "benchmarks"):
        for path in (root / folder).rglob("*"):
            if path.suffix not in {".py", ".yaml", ".md", ".json"} or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            if outside.search(text):
                bad.append(str(path.relative_to(root)))
            missing += [f"{path.relative_to(root)}: #{a}" for a in cited.findall(text) if a not in anchors]
    assert not bad, f"cite docs/references.md instead: {bad}"
    assert not missing, f"no such section in docs/references.md: {missing}"
