"""Cold start: the processor and planner handlers' import time in a Lambda-like
interpreter (the built function and layer, the runtime's boto3, no site-packages), against a
baseline handler, with and without pydantic."""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from bench.workload import REAL

ROOT = Path(__file__).resolve().parent.parent
IMPORT_SAMPLES = 15

# What any handler of this design sets up: Powertools' logger, metrics, tracer, an SQS batch
# processor, idempotency on DynamoDB, and one boto3 client.
BASELINE = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer, idempotent_function,
)
import boto3
Logger(); Metrics(); Tracer(); BatchProcessor(event_type=EventType.SQS)
DynamoDBPersistenceLayer(table_name="idempotency", boto3_client=boto3.client("dynamodb"))
"""
# The same, with pydantic imported and one model built: the stack's own boundary library,
# which every implementation of this design loads too. Reported next to the ratio.
BASELINE_WITH_PYDANTIC = (
    BASELINE + "import pydantic\nclass Model(pydantic.BaseModel):\n    value: int\n"
)
# The same, with garbage collection paused for the init as jobkit's handlers pause it
# (jobkit.cold_start): what is left of the ratio is jobkit's own import, not the collector's.
BASELINE_WITH_PYDANTIC_GC_PAUSED = (
    "import gc\ngc.disable()\n" + BASELINE_WITH_PYDANTIC + "gc.freeze()\ngc.enable()\n"
)
# The Lambda Python runtime ships boto3 and its dependencies; the layer brings the rest.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


@contextmanager
def lambda_like_path() -> Iterator[str]:
    """A PYTHONPATH like Lambda's: the built function and layer (as deployed, bytecode
    included), and the runtime's boto3."""
    import_root = Path(boto3.__file__).parent.parent
    with tempfile.TemporaryDirectory() as runtime:
        for package in RUNTIME_PACKAGES:
            source = import_root / package
            if not source.exists():
                source = import_root / f"{package}.py"
            (Path(runtime) / source.name).symlink_to(source)
        built = ROOT / ".aws-sam" / "build"
        # `sam build` builds a layer per architecture: this machine's is the one that imports.
        layer = {"aarch64": "CommonLayerArm64", "arm64": "CommonLayerArm64"}.get(
            platform.machine(), "CommonLayerX8664"
        )
        yield os.pathsep.join([str(built / "Processor"), str(built / layer / "python"), runtime])


def import_seconds(codes: dict[str, str], path: str) -> dict[str, list[float]]:
    """Seconds each piece of code takes to import in a fresh interpreter, one sample a round.
    The pieces take turns within each round, so a machine that slows down or speeds up
    meanwhile weighs on all of them alike."""
    timed = {
        name: f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
        for name, code in codes.items()
    }
    return _samples(timed, path, IMPORT_SAMPLES)


def _samples(programs: dict[str, str], path: str, rounds: int) -> dict[str, list[float]]:
    """The figure each program prints last, from a fresh interpreter each round."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": path,
        "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's code directories are read-only
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "JOB_TYPE": REAL,
        "CONFIG_TABLE": "c",
        "RUNS_TABLE": "r",
        "RECORDS_TABLE": "rec",
        "IDEMPOTENCY_TABLE": "i",
        "CONTROL_TABLE": "ctl",
        "WORK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/w",
        "WORK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/1/d",
        "EVENT_BUS_NAME": "b",
        "EXTERNAL_BASE_URL": "https://external.example.com",
        "CREDENTIALS_SECRET_PREFIX": "p",
        "RETRY_FUNCTION_ARN": "arn:aws:lambda:us-east-1:1:function:r",
        "RETRY_ROLE_ARN": "arn:aws:iam::1:role/r",
        "RETRY_SCHEDULE_GROUP": "s",
    }
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(rounds):
        for name, program in programs.items():
            out = subprocess.run(  # noqa: S603 - our own interpreter, our own code
                [sys.executable, "-S", "-c", program],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return samples


# What the processor's import spends on jobkit's own pydantic models: each model class's
# construction timed, Powertools' batch utility imported first as processor.app does.
MODELS_MS = """
import time
import aws_lambda_powertools.utilities.batch
from pydantic._internal import _model_construction as construction
spent = []
build = construction.ModelMetaclass.__new__
def timed(mcs, name, bases, namespace, **kwargs):
    started = time.perf_counter()
    cls = build(mcs, name, bases, namespace, **kwargs)
    if namespace.get("__module__", "").startswith(("jobkit", "jobs")):
        spent.append(time.perf_counter() - started)
    return cls
construction.ModelMetaclass.__new__ = timed
import processor.app
print(1000 * sum(spent))
"""


def import_breakdown(path: str) -> dict[str, float]:
    """What jobkit's pydantic models take of the processor's import (the median of a few
    rounds)."""
    samples = _samples({"models": MODELS_MS}, path, rounds=5)
    return {"jobkit_models_ms": round(statistics.median(samples["models"]), 1)}


def import_figures() -> dict[str, Any]:
    """How long the handlers take to import, against a bare baseline and one with pydantic."""
    with lambda_like_path() as path:
        seconds = import_seconds(
            {
                "baseline": BASELINE,
                "processor": "import processor.app",
                "planner": "import planner.app",
                "baseline_with_pydantic": BASELINE_WITH_PYDANTIC,
                "baseline_with_pydantic_gc_paused": BASELINE_WITH_PYDANTIC_GC_PAUSED,
            },
            path,
        )
        breakdown = import_breakdown(path)
    median = {name: statistics.median(values) for name, values in seconds.items()}

    def ratio(code: str, baseline: str) -> float:
        """The median over the rounds of each round's ratio."""
        per_round = [a / b for a, b in zip(seconds[code], seconds[baseline], strict=True)]
        return round(statistics.median(per_round), 2)

    return {
        "import_seconds": {name: round(value, 3) for name, value in median.items()},
        "import_ratio": ratio("processor", "baseline"),
        "import_ratio_planner": ratio("planner", "baseline"),
        "import_ratio_over_baseline_with_pydantic": ratio("processor", "baseline_with_pydantic"),
        "import_ratio_over_baseline_gc_paused_alike": ratio(
            "processor", "baseline_with_pydantic_gc_paused"
        ),
        "import_breakdown_ms": breakdown,
    }
