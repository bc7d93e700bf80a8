"""One place that builds the logger, tracer and metrics every function uses."""

from aws_lambda_powertools import Logger, Metrics, Tracer

# Service and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
# set in template.yaml Globals, so tests and the CLI get the same names.
logger = Logger()
tracer = Tracer()
metrics = Metrics()
