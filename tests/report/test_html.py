from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tangentlab.report import StudySection, Table, write_report


def _png(path: Path) -> Path:
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    fig.savefig(path)
    plt.close(fig)
    return path


def test_page_has_claim_findings_tables_and_existing_images(tmp_path):
    figures = tmp_path / "report" / "figures"
    figures.mkdir(parents=True)
    inside = _png(figures / "a.png")
    outside = _png(tmp_path / "elsewhere.png")
    section = StudySection(
        study="demo",
        title="Demo <study>",
        citation="Someone 2020",
        claim="Things shrink like width^(-1/2) & more",
        verdict="mixed",
        findings=("slope -0.52 ± 0.03", "second <finding>"),
        figures=(inside, outside),
        tables=(
            Table(
                caption="slopes",
                header=("setting", "slope"),
                rows=(("NTK, GD", "-0.52"), ("a<b", "1")),
            ),
        ),
        settings=("widths [64, 256]",),
    )
    path = write_report(
        tmp_path, [section], title="tangentlab report", metadata={"torch": "2.x", "command": "x"}
    )
    assert path == tmp_path / "report" / "index.html"
    text = path.read_text()
    assert "Things shrink like width^(-1/2) &amp; more" in text
    assert "slope -0.52 ± 0.03" in text and "second &lt;finding&gt;" in text
    assert "<td>NTK, GD</td>" in text and "<td>a&lt;b</td>" in text and "<td>-0.52</td>" in text
    assert "Demo &lt;study&gt;" in text and ">mixed<" in text
    assert "widths [64, 256]" in text and "<code>2.x</code>" in text
    srcs = [part.split('"')[0] for part in text.split('<img src="')[1:]]
    assert len(srcs) == 2
    for src in srcs:
        assert not Path(src).is_absolute()
        assert (path.parent / src).is_file()
    assert "figures/elsewhere.png" in srcs


def test_empty_report(tmp_path):
    text = write_report(tmp_path, [], title="t", metadata={}).read_text()
    assert "No study results" in text


def test_findings_json_holds_the_numbers_as_data(tmp_path):
    import json
    import math

    import numpy as np
    import pytest

    section = StudySection(
        study="demo",
        title="Demo",
        citation="Someone 2020",
        claim="c",
        verdict="supported",
        findings=("slope -0.52 ± 0.03",),
        tables=(Table(caption="t", header=("a",), rows=(("1",),)),),
        numbers={"slope": np.float64(-0.52), "stderr": 0.03, "widths": (64, 256), "ci": [math.nan, 1.0]},
        runs=("r1", "r2"),
    )
    write_report(tmp_path, [section], title="t", metadata={"torch": "2.x"})
    data = json.loads((tmp_path / "report" / "findings.json").read_text())
    assert data["metadata"] == {"torch": "2.x"}
    (study,) = data["studies"]
    assert study["verdict"] == "supported" and study["claim"] == "c" and study["runs"] == ["r1", "r2"]
    assert study["numbers"] == {"slope": -0.52, "stderr": 0.03, "widths": [64, 256], "ci": [None, 1.0]}
    assert study["tables"] == [{"caption": "t", "header": ["a"], "rows": [["1"]]}]
    with pytest.raises(TypeError, match="numbers: expected JSON-ready data"):
        StudySection(
            study="x",
            title="x",
            citation="x",
            claim="x",
            verdict="mixed",
            findings=(),
            numbers={"a": object()},
        ).to_dict()
