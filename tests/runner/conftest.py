from pathlib import Path

import pytest
import yaml

TOY = "tests.runner.toy_study:ToyStudy"
REPO = Path(__file__).resolve().parents[2]


def write_sweep(folder: Path, name: str = "sweep.yaml", **fields: object) -> Path:
    """A toy sweep file; ``fields`` override the defaults."""
    config: dict[str, object] = {
        "study": TOY,
        "data": {"name": "synthetic", "n_train": 8, "n_test": 8},
        "grid": {"width": [2, 3]},
        "seeds": 2,
    }
    config.update(fields)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    return write_sweep(tmp_path)
