"""--report: one self-contained HTML page (plots embedded, tables, the scenario, provenance, version) that a
real browser renders offline -- checked in headless Chromium when the machine has it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sim import __version__
from sim.cli import main as simulate
from sim.plan.cli import main as plan
from tests.helpers import scenario_dict
from tests.test_plan import BASE, PRICES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _simulate_report(tmp_path: Path) -> Path:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(scenario_dict(num_requests=120)))
    out = tmp_path / "run"
    result = CliRunner().invoke(simulate, [str(scenario), "--out", str(out), "--report", "--no-plot"])
    assert result.exit_code == 0, result.output
    return out / "report.html"


def _plan_report(tmp_path: Path) -> Path:
    scenario = tmp_path / "two.yaml"
    scenario.write_text(yaml.safe_dump(BASE))
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump(PRICES.model_dump()))
    out = tmp_path / "plan"
    args = [str(scenario), "--target-rate", "25", "--prices", str(prices), "--out", str(out), "--jobs", "1"]
    result = CliRunner().invoke(plan, [*args, "--report"])
    assert result.exit_code == 0, result.output
    return out / "report.html"


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _assert_self_contained(page: str) -> None:
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not fetch anything"
    assert "<script" not in page
    assert f"servesim {__version__}" in page


def test_simulate_report_holds_plots_tables_scenario_and_provenance(tmp_path):
    page = _simulate_report(tmp_path).read_text()
    _assert_self_contained(page)
    pngs = _embedded_pngs(page)
    assert len(pngs) == 1 and pngs[0].startswith(PNG_MAGIC)  # the time series, drawn even with --no-plot
    for heading in ("Headline (simulated)", "Replica start-up, by part", "Where the inputs came from"):
        assert f"<h2>{heading}</h2>" in page
    assert "goodput" in page and "vLLM" in page  # a headline metric and a cited default
    assert "Scenario (as resolved)" in page and "max_num_seqs" in page


def test_plan_report_holds_the_ranking_pareto_plot_and_the_winner(tmp_path):
    page = _plan_report(tmp_path).read_text()
    _assert_self_contained(page)
    pngs = _embedded_pngs(page)
    assert len(pngs) == 1 and pngs[0].startswith(PNG_MAGIC)
    assert "<h2>Candidates, ranked</h2>" in page and "option=fast_dear" in page
    assert "How each number was obtained" in page and "best.yaml" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.title = JSON.stringify({images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('tbody tr').length});
});
</script>"""


@pytest.mark.skipif(
    _chromium() is None, reason="needs Chromium (Debian package chromium; .ci/run installs it)"
)
def test_reports_render_in_headless_chromium(tmp_path):
    """The browser decodes every embedded plot and lays out the tables, offline."""
    for report in (_simulate_report(tmp_path), _plan_report(tmp_path)):
        probe = report.with_name("probe.html")  # the page itself carries no script; the probe adds one
        probe.write_text(report.read_text().replace("</body>", CHECK + "</body>"))
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
        ]
        dom = subprocess.run(
            [_chromium(), *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
        ).stdout
        title = re.search(r"<title>(\{.*?\})</title>", dom)
        assert title, f"the page did not load in Chromium: {dom[:300]!r}"
        seen = json.loads(title.group(1).replace("&quot;", '"'))
        assert seen["images"] >= 1 and seen["decoded"] == seen["images"]
        assert seen["tables"] >= 2 and seen["rows"] >= 2
        shot = tmp_path / f"{report.parent.name}.png"
        subprocess.run(
            [_chromium(), *flags, "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri()],
            capture_output=True,
            timeout=120,
        )
        assert shot.read_bytes().startswith(PNG_MAGIC)


def test_a_study_reads_at_80_columns_and_ends_with_a_verdict(tmp_path):
    import io
    from pathlib import Path

    import yaml
    from rich.console import Console

    from sim.report.console import print_study
    from sim.risk.study import run_study
    from tests.helpers import scenario_dict

    data = scenario_dict(
        num_requests=60,
        fleet={"usd_per_chip_hour": 2.0},
        variants={"small_fleet": {}, "bigger_fleet": {"fleet.replicas": 3}},
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    study = run_study(Path(path), runs=1, jobs=1)
    out = io.StringIO()
    print_study(study, Console(file=out, width=80, force_terminal=False))
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    verdict = text[text.index("Verdict:") :]
    assert "SLO attainment over the run" in verdict and "1 run per variant" in verdict
    assert "Cheapest per good request" in verdict and "kernel tables" in verdict
