"""The report's layout: numbered captioned figures, findings as a table, settings as YAML that reproduce the runs,
the evidence (runs, seeds) by each verdict, and a how-to-reproduce command."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml
from typer.testing import CliRunner

from tangentlab._packaged import packaged_configs, resolve_config
from tangentlab._sweep_yaml import evidence_note, sweeps_from_runs, to_yaml
from tangentlab.cli import app
from tangentlab.report import StudySection, write_report
from tangentlab.report.figures import save_figure
from tangentlab.runner import load_sweep
from tangentlab.studies import get_study
from tests.runner.conftest import write_sweep

runner = CliRunner()


def _figure(path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2], [3, 4])
    ax.set_title(title)
    return save_figure(fig, path)


def _section(name: str, figures: tuple[Path, ...], **extra: object) -> StudySection:
    return StudySection(
        study=name,
        title=name.title(),
        citation="A & B 2020",
        claim="claim",
        verdict="supported",
        findings=("width 64: slope -0.49 (CI -0.55 to -0.41)", "A sentence without a lead-in, ending here."),
        figures=figures,
        **extra,  # type: ignore[arg-type]
    )


def test_figures_are_numbered_across_sections_with_captions_and_links(tmp_path: Path):
    figs = tmp_path / "report" / "figures"
    a = _figure(figs / "a.png", r"kernel change $\|\Theta_T-\Theta_0\|_F$ against $\sigma_w^2$")
    b = _figure(figs / "b.png", "second")
    c = _figure(figs / "c.png", "third")
    sections = [
        _section("one", (a, b), captions=("Given caption for a.",)),
        _section(
            "two", (c,), settings_yaml="study: two\nseeds: 2\n", reproduce="tangentlab run x.yaml --out o"
        ),
    ]
    html = write_report(tmp_path, sections, title="t", metadata={}).read_text()
    captions = re.findall(r"<figcaption><strong>Figure (\d+)\.</strong> ([^<\[]*)", html)
    assert [(n, text.strip()) for n, text in captions] == [
        ("1", "Given caption for a."),
        ("2", "second"),
        ("3", "third"),
    ]
    assert 'href="figures/a.pdf">PDF</a>' in html and 'href="figures/c.csv">data (CSV)</a>' in html
    assert 'width="400"' in html  # a 4-inch figure at 200 dpi is shown at its drawn size, 400 CSS px
    assert '<pre class="yaml">study: two\nseeds: 2\n</pre>' in html
    assert "<strong>How to reproduce:</strong> <code>tangentlab run x.yaml --out o</code>" in html
    assert '<td class="about">width 64</td><td>slope -0.49 (CI -0.55 to -0.41)</td>' in html
    assert '<td colspan="2">A sentence without a lead-in, ending here.</td>' in html


def test_caption_defaults_to_the_title_stored_in_the_png_as_plain_text(tmp_path: Path):
    figs = tmp_path / "report" / "figures"
    a = _figure(figs / "a.png", r"$\sigma_w^2$ against $\beta$")
    html = write_report(tmp_path, [_section("one", (a,))], title="t", metadata={}).read_text()
    assert "<strong>Figure 1.</strong> σ_w² against β" in html


@pytest.mark.parametrize("name", packaged_configs())
def test_sweeps_written_back_from_runs_give_the_same_run_ids(name: str, tmp_path: Path, cifar_data: Path):
    _, study, runs = load_sweep(resolve_config(Path(name), tmp_path), get_study)
    ids: set[str] = set()
    for i, sweep in enumerate(sweeps_from_runs(runs, study)):
        path = tmp_path / f"back{i}.yaml"
        path.write_text(to_yaml(sweep))
        ids |= {r.run_id for r in load_sweep(path, get_study)[2]}
    assert ids == {r.run_id for r in runs}


def test_runs_that_are_not_one_product_split_into_sweeps_that_still_reproduce_them(tmp_path: Path):
    _, study, runs = load_sweep(resolve_config(Path("quick/dispersion"), tmp_path), get_study)
    subset = [r for r in runs if not (r.params["activation"] == "relu" and r.params["depth"] == 12)]
    subset += [
        r for r in runs if r.params["activation"] == "relu" and r.params["depth"] == 12 and r.seed == 0
    ]
    sweeps = sweeps_from_runs(subset, study)
    assert len(sweeps) > 1
    ids: set[str] = set()
    for i, sweep in enumerate(sweeps):
        path = tmp_path / f"part{i}.yaml"
        path.write_text(to_yaml(sweep))
        ids |= {r.run_id for r in load_sweep(path, get_study)[2]}
    assert ids == {r.run_id for r in subset}


def test_evidence_note_counts_runs_and_seeds_and_warns_when_few(tmp_path: Path):
    _, _, runs = load_sweep(resolve_config(Path("quick/uncertainty"), tmp_path), get_study)
    text = evidence_note(runs, n_failed=1)
    assert text.startswith(
        f"Evidence: {len(runs)} finished runs (1 failed) at {len(runs)} settings, 1 seed(s)"
    )
    assert "indicative" in text


def test_cli_report_writes_the_sweep_and_its_command_reruns_nothing(tmp_path: Path):
    path = write_sweep(tmp_path, grid={"width": [2, 3]}, seeds=3)
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(path), "--out", str(out), "--no-progress"]).exit_code == 0
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    html = (out / "report" / "index.html").read_text()
    sweep_file = out / "report" / "sweeps" / "toy.yaml"
    assert yaml.safe_load(sweep_file.read_text())["grid"] == {"width": [2, 3]}
    assert f"tangentlab run {sweep_file.as_posix()} --out {out.as_posix()}" in html
    assert "6 finished runs (0 failed) at 2 settings, 3 seed(s) per setting" in html
    again = runner.invoke(app, ["run", str(sweep_file), "--out", str(out), "--no-progress"])
    assert again.exit_code == 0 and "6 already finished, 0 done now" in again.output
