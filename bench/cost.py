"""What a million records cost on AWS, from what one bench run measured.

Prices are AWS's published on-demand prices, us-east-1, as of 2026 (no free tier):
https://aws.amazon.com/lambda/pricing/, /sqs/pricing/, /dynamodb/pricing/on-demand/,
/eventbridge/pricing/, /cloudwatch/pricing/. Lambda durations are the billed durations the
local stack reported, at the memory each function is configured with: MiniStack on two cores
is slower than Lambda, so the Lambda line is an upper bound.

The naive build is the same pipeline without the batching: one SendMessage per record, one
counter update per record instead of one counter update and outcome pack per client per
batch, and one
acknowledgement (an external call, which takes a rate-limit token) per record. It is priced
from the same measurements, changing only those requests; its Lambda time grows by the
measured time of one AWS request for each extra request, and by the measured time of one
external call for each extra acknowledgement.
"""

from dataclasses import dataclass

LAMBDA_GB_SECOND = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6  # standard queue, per 64 KB chunk
DYNAMODB_WRITE_UNIT = 0.625 / 1e6  # on-demand
DYNAMODB_READ_UNIT = 0.125 / 1e6
EVENTBRIDGE_EVENT = 1.00 / 1e6  # custom events: each entry of a PutEvents (64 KB chunk)
SCHEDULER_INVOCATION = 1.00 / 1e6
LOG_INGESTION_GB = 0.50  # CloudWatch Logs; EMF metrics are log lines
MILLION = 1_000_000
# The floor of exactly-once processing, per record: the idempotency record (its PutItem and
# UpdateItem, 2 write units) and the guarded transition with its history row (one
# transaction of two items, 4 write units).
FLOOR_WRITE_UNITS = 6


@dataclass(frozen=True)
class Usage:
    """What one run used, in total, for ``records`` record items."""

    records: int
    lambda_gb_seconds: float
    lambda_invocations: int
    sqs_requests: float  # SDK requests plus the event source's receive and delete calls
    dynamodb_write_units: float
    dynamodb_read_units: float
    eventbridge_events: int
    scheduler_invocations: int
    log_bytes: int
    external_calls: int

    def per_million(self) -> dict[str, float]:
        """Dollars per 1M records, by service."""
        scale = MILLION / self.records
        return {
            "lambda": scale
            * (
                self.lambda_gb_seconds * LAMBDA_GB_SECOND + self.lambda_invocations * LAMBDA_REQUEST
            ),
            "sqs": scale * self.sqs_requests * SQS_REQUEST,
            "dynamodb": scale
            * (
                self.dynamodb_write_units * DYNAMODB_WRITE_UNIT
                + self.dynamodb_read_units * DYNAMODB_READ_UNIT
            ),
            "eventbridge": scale * self.eventbridge_events * EVENTBRIDGE_EVENT,
            "scheduler": scale * self.scheduler_invocations * SCHEDULER_INVOCATION,
            "cloudwatch_logs": scale * self.log_bytes / 1e9 * LOG_INGESTION_GB,
        }


@dataclass(frozen=True)
class Batching:
    """What the batching saved in the measured run, to undo for the naive build."""

    record_send_requests: int  # SendMessageBatch calls that carried record items
    counting_write_units: float  # the outcome counting's units (counters and packs)
    acks: int  # acknowledgement calls made
    seconds_per_aws_request: float  # measured: processor time / processor requests
    seconds_per_external_call: float
    memory_gb: float  # the processor's


def naive(usage: Usage, batching: Batching) -> Usage:
    """The same run, one SendMessage, one counter update and one ack per record."""
    n = usage.records
    extra_sends = n - batching.record_send_requests
    extra_acks = n - batching.acks
    # One plain UpdateItem per record replaces the batched counting.
    write_units = usage.dynamodb_write_units - batching.counting_write_units + n
    write_units += extra_acks  # each ack takes a rate-limit token: one conditional write
    extra_seconds = (extra_sends + n + extra_acks) * batching.seconds_per_aws_request
    extra_seconds += extra_acks * batching.seconds_per_external_call
    return Usage(
        records=n,
        lambda_gb_seconds=usage.lambda_gb_seconds + extra_seconds * batching.memory_gb,
        lambda_invocations=usage.lambda_invocations,
        sqs_requests=usage.sqs_requests + extra_sends,
        dynamodb_write_units=write_units,
        dynamodb_read_units=usage.dynamodb_read_units,
        eventbridge_events=usage.eventbridge_events,
        scheduler_invocations=usage.scheduler_invocations,
        log_bytes=usage.log_bytes,
        external_calls=usage.external_calls + extra_acks,
    )
