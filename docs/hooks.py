"""mkdocs hooks: the per-study pages and the changelog are generated at build time from their single sources.

A study page is built from the study class (title, citation, claim), its pydantic ``Params`` model (the parameter
table, as ``tangentlab studies --params`` prints it), its packaged quick config (the setup) and its module docstring
(the design and how to read the report's figures), so the site cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from tangentlab._packaged import packaged_config_text, packaged_configs, params_table
from tangentlab.studies import list_studies

ROOT = Path(__file__).resolve().parents[1]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def study_page(cls: Any) -> str:
    name = cls.name
    rows = "\n".join(
        f"| `{field}` | {_cell(type_name.replace('|', ' / '))} | `{_cell(default)}` | {_cell(meaning)} |"
        for field, type_name, default, meaning in params_table(cls.Params)
    )
    configs = [c for c in packaged_configs() if c.rsplit("/", 1)[-1] in (name, f"{name}_cnn")]
    runs = "\n".join(f"    tangentlab run {c} --out results/{c.replace('/', '_')}" for c in configs)
    quick = packaged_config_text(f"quick/{name}") if f"quick/{name}" in configs else ""
    return f"""# `{name}`: {cls.title}

*{cls.citation}*

## Claim

{cls.claim}

## Setup

The packaged sweeps of this study ({", ".join(f"`{c}`" for c in configs)}) run with

{runs}
    tangentlab report results/quick_{name}

The quick sweep (copy it out for editing with `tangentlab configs copy quick/{name} .`):

```yaml
{quick.rstrip()}
```

## Parameters

The fields of `params` (or grid axes without a dot), from the study's pydantic model
(`tangentlab studies --params {name}` prints the same table).

| name | type | default | meaning |
|------|------|---------|---------|
{rows}

## Design, and how to read the figures

Every figure of the report is saved as PNG (200 dpi), PDF and a CSV of the plotted numbers beside it; the report
numbers the figures, shows the sweep as YAML and the command that reproduces it, and states the runs and seeds
behind the verdict. The study's own description of what it measures and how its report judges the claim:

::: {cls.__module__}
    options:
      members: false
      show_root_heading: false
      show_root_toc_entry: false
"""


def on_files(files: Files, config: Any) -> Files:
    for cls in list_studies():
        files.append(File.generated(config, f"studies/{cls.name}.md", content=study_page(cls)))
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files
