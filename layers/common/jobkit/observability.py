"""One place that builds the logger, tracer and metrics every function uses."""

import functools
import os
from collections.abc import Callable

from aws_lambda_powertools import Logger, Metrics, Tracer

from jobkit.adapters.aws import CAPACITY_UNITS, PERMISSIONS, REQUESTS

# Service and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
# set in template.yaml Globals, so tests and the CLI get the same names.
logger = Logger()
tracer = Tracer()
metrics = Metrics()


def log_request_counts[**P, R](handler: Callable[P, R]) -> Callable[P, R]:
    """With JOBKIT_LOG_REQUESTS=true (the local stack), log the AWS requests each invocation
    made, by service and operation: what `make bench` adds up per record; and the IAM
    permissions they needed, which the integration tier checks against the deployed roles."""

    @functools.wraps(handler)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        if os.environ.get("JOBKIT_LOG_REQUESTS") != "true":
            return handler(*args, **kwargs)
        before, units_before = REQUESTS.copy(), dict(CAPACITY_UNITS)
        permissions_before = PERMISSIONS.copy()
        try:
            return handler(*args, **kwargs)
        finally:
            logger.info(
                "aws requests",
                extra={
                    "requests": dict(REQUESTS - before),
                    "capacity_units": {
                        key: units - units_before.get(key, 0.0)
                        for key, units in CAPACITY_UNITS.items()
                        if units != units_before.get(key, 0.0)
                    },
                    "permissions": sorted(PERMISSIONS - permissions_before),
                },
            )

    return counted
