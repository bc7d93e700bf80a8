"""The time budget of an invocation: it always returns, its batch settled, before the timeout.

One external call as configured (``jobkit.adapters.http_client``) may take, per attempt, a
token wait up to the bucket's patience (10 s), a connect (up to 2 s) and an answer (up to
EXTERNAL_TIMEOUT_SECONDS), and up to 5 s of backoff between attempts (a Retry-After's
included): with 3 attempts, 3 x (10 + 2 + 5) + 2 x 5 = 61 s on AWS (5 s timeout), twice that
when a 401 calls again with a fresh credential. So a call is given ``call_seconds``
(EXTERNAL_CALL_BUDGET_SECONDS, when its worst case is longer) and its waits are cut to it
(``jobkit.adapters.ratelimit.time_budget``): the token wait and the backoff leave room for a
whole attempt, and no attempt starts without that room. A message then starts only while the
time left covers its worst case, its AWS requests and the settling of the batch (with the
template's 23 s call budget):
  page item:   23 (its fetch) + 1 (its requests) + 3 (settling) = 27 s left,
  record item: 1 + 3 + 23 (one acknowledgement when the batch settles) = 27 s,
  page item once the batch owes an acknowledgement: 23 + 1 + 3 + 23 = 50 s;
and an acknowledgement is attempted while 23 + 3 = 26 s are left.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobkit.adapters.external import call_worst_case_seconds, longest_attempt_seconds
from jobkit.adapters.ratelimit import DEFAULT_PATIENCE_SECONDS
from jobkit.domain.envelope import PageItem, RecordItem

if TYPE_CHECKING:
    from jobkit.settings import ProcessorSettings


@dataclass(frozen=True)
class TimeBudget:
    call_seconds: float = 10.0  # one external call at its worst, as cut to the budget
    item_seconds: float = 1.0  # the AWS requests of one item (a page's enqueueing included)
    settle_seconds: float = 3.0  # the AWS requests of settling a batch (counts, copies, events)

    @classmethod
    def from_settings(cls, settings: "ProcessorSettings") -> "TimeBudget":
        timeout = settings.external_timeout_seconds
        attempt = longest_attempt_seconds(timeout)
        if settings.external_call_budget_seconds < attempt:
            # Shorter than one attempt, a call could never be made.
            raise ValueError(
                f"EXTERNAL_CALL_BUDGET_SECONDS ({settings.external_call_budget_seconds:g}) "
                f"must cover one attempt ({attempt:g} s: its connect, then "
                f"EXTERNAL_TIMEOUT_SECONDS for its answer)"
            )
        worst = call_worst_case_seconds(
            timeout, settings.external_max_attempts, DEFAULT_PATIENCE_SECONDS
        )
        return cls(
            call_seconds=min(worst, settings.external_call_budget_seconds),
            item_seconds=settings.item_reserve_seconds,
            settle_seconds=settings.settle_reserve_seconds,
        )

    def after_call(self, owes_ack: bool) -> float:
        """What a page's fetch must leave: its own requests, the settling, perhaps an ack."""
        return self.item_seconds + self.settle_seconds + (self.call_seconds if owes_ack else 0)

    def to_start(self, item: PageItem | RecordItem, owes_ack: bool) -> float:
        """The time left a message needs to be started; ``owes_ack``: the batch already owes
        an acknowledgement (a record item keeps room for the one it may owe itself)."""
        if isinstance(item, PageItem):
            return self.call_seconds + self.after_call(owes_ack)
        return self.item_seconds + self.settle_seconds + self.call_seconds

    def to_acknowledge(self) -> float:
        return self.call_seconds + self.settle_seconds


class Clock:
    """The invocation's time left, from its Lambda context, and the budget of one call."""

    def __init__(self, context: LambdaContext, budget: TimeBudget) -> None:
        self._context = context
        self.budget = budget

    def seconds_left(self) -> float:
        return self._context.get_remaining_time_in_millis() / 1000

    def for_a_call(self, reserve: float) -> Callable[[], float]:
        """The budget of one external call starting now: the call budget, or less when the
        invocation must keep ``reserve`` seconds for what follows the call."""
        start = self.seconds_left()
        end = start - min(self.budget.call_seconds, max(0.0, start - reserve))
        return lambda: self.seconds_left() - end
