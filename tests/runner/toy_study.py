"""A cheap study for the runner's tests: ridge regression on Gaussian data, deterministic in seed and params."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, PositiveInt

from tangentlab.report import StudySection, Table
from tangentlab.runner import RunConfig
from tangentlab.studies import ResultRow, RunOutput, Study


class ToyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: PositiveInt = 4  # features of the regression
    ridge: NonNegativeFloat = 0.1
    sleep: NonNegativeFloat = 0.0  # seconds to wait (to make a sweep slow enough to kill)
    fail: bool = False  # raise instead of returning
    fail_marker: str = ""  # raise while this file exists (a failure that a retry can fix)
    log_dir: str = (
        ""  # one file per execution here: width, seed, the parent's process group (a Ray worker: its node)
    )


class ToyStudy(Study):
    name: ClassVar[str] = "toy"
    title: ClassVar[str] = "Toy ridge regression"
    citation: ClassVar[str] = "Hoerl & Kennard (1970)"
    claim: ClassVar[str] = "Ridge regression shrinks the weights."
    Params: ClassVar[type[BaseModel]] = ToyParams
    default_model: ClassVar[dict[str, Any] | None] = {"layer": "Dense", "width": 1}

    def run(self, config: RunConfig, *, device: str = "cpu") -> RunOutput:
        p = ToyParams.model_validate(config.params)
        if p.fail or (p.fail_marker and Path(p.fail_marker).exists()):
            raise RuntimeError(f"toy failure requested (width={p.width})")
        time.sleep(p.sleep)
        if p.log_dir:
            name = f"w{p.width}-s{config.seed}-pid{os.getpid()}-{uuid.uuid4().hex[:8]}"
            (Path(p.log_dir) / name).write_text(str(os.getpgid(os.getppid())))  # a Ray worker: its raylet's
        rng = np.random.default_rng([config.seed, p.width])
        x = rng.standard_normal((32, p.width))
        y = x @ rng.standard_normal(p.width) + 0.1 * rng.standard_normal(32)
        w = np.linalg.solve(x.T @ x + p.ridge * np.eye(p.width), x.T @ y)
        mse = float(np.mean((x @ w - y) ** 2))
        return RunOutput({"train_mse": mse, "weight_norm": float(np.linalg.norm(w))}, {"weights": w})

    def report(self, rows: list[ResultRow], figures_dir: Path) -> StudySection:
        table = Table(
            "Training error",
            ("width", "seed", "train_mse"),
            tuple(
                (str(r.config.params["width"]), str(r.config.seed), str(r.metrics["train_mse"])) for r in rows
            ),
        )
        figure = figures_dir / "toy_weights.png"  # returned as given: relative when figures_dir is
        figure.write_bytes(b"\x89PNG\r\n\x1a\n")
        return StudySection(
            self.name,
            self.title,
            self.citation,
            self.claim,
            "inconclusive",
            (),
            figures=(figure,),
            tables=(table,),
        )
