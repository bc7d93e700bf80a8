"""`sam build` gives each architecture a layer of its own wheels, whatever its cache holds.

SAM's build cache (`cached = true` in samconfig.toml's default, AWS build) is keyed on a
layer's source and definition, not on what its Makefile is told: a layer built for x86_64 (the
local stack) was once handed to the next arm64 build (AWS) as it was. Each architecture now
has a layer, and a build target, of its own.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, copy_project

pytestmark = pytest.mark.integration
SAM = ROOT / ".jobkit" / "venvs" / "sam" / "bin" / "sam"
# ELF e_machine of compiled extensions, and the wheel platform tags pip installed.
MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}
WHEEL_TAG = {"arm64": "aarch64", "x86_64": "x86_64"}
LAYERS = {"arm64": "CommonLayerArm64", "x86_64": "CommonLayerX8664"}


def _sam_build(project: Path, *args: str) -> None:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # python3.13
    result = subprocess.run(  # noqa: S603 - the SAM CLI of this project
        [str(SAM), "build", "--cached", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _machines(layer: Path) -> set[int]:
    machines = set()
    for library in layer.rglob("*.so"):
        header = library.read_bytes()[:20]
        machines.add(int.from_bytes(header[18:20], "little"))
    return machines


def _wheel_tags(layer: Path) -> set[str]:
    return {
        line.split("-")[-1].strip()
        for wheel in layer.glob("python/*.dist-info/WHEEL")
        for line in wheel.read_text().splitlines()
        if line.startswith("Tag:") and not line.strip().endswith("-any")
    }


def test_an_x86_64_build_then_an_arm64_build_give_each_its_own_wheels(tmp_path: Path) -> None:
    # Given a checkout built for the local stack (x86_64), with SAM's cache on
    copy_project(tmp_path)
    _sam_build(tmp_path, "--parameter-overrides", "Architecture=x86_64 Environment=local")
    # When it is built again for AWS (samconfig.toml's default: arm64, cached)
    _sam_build(tmp_path)
    # Then the layer an arm64 stack deploys holds arm64 code only, and the x86_64 one x86_64
    built = tmp_path / ".aws-sam" / "build"
    for architecture, layer in LAYERS.items():
        assert _machines(built / layer) == {MACHINE[architecture]}, layer
        tags = _wheel_tags(built / layer)
        assert tags and all(tag.endswith(WHEEL_TAG[architecture]) for tag in tags), tags
