"""The retry worker Lambda, from its settings."""

from jobkit.pipeline.retry import RetryWorker
from jobkit.settings import RetryWorkerSettings
from jobkit.wiring.parts import Parts, build_retries


def build_retry_worker(settings: RetryWorkerSettings, parts: Parts, target_arn: str) -> RetryWorker:
    """``target_arn``: the worker's own, where its next attempts are scheduled to invoke."""
    retry_state = parts.ledger.retry_state
    retries = build_retries(settings, retry_state, target_arn=target_arn)
    return RetryWorker(retry_state, parts.queue, parts.circuits, retries)
