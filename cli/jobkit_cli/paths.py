"""Where the project and its local state live."""

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding template.yaml: $JOBKIT_HOME, else the nearest parent of the cwd."""
    if home := os.environ.get("JOBKIT_HOME"):
        return Path(home).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file() and (candidate / "functions").is_dir():
            return candidate
    raise SystemExit("jobkit: run this inside a jobkit checkout (no template.yaml found)")


def state_dir() -> Path:
    """Per-checkout local state (git-ignored), so two checkouts never collide."""
    path = project_root() / ".jobkit"
    path.mkdir(exist_ok=True)
    return path
