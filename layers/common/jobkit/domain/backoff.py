"""Exponential backoff with jitter: the one formula every retry in jobkit waits by.

Client retries on a schedule, item retries through message visibility, webhook deliveries,
resent queue batches, transaction conflicts and throttled batch reads all wait a random time
below a ceiling that doubles with each attempt, up to a cap, so that the callers refused
together do not come back together.
"""

import random


def backoff_seconds(
    attempt: int,
    base: float,
    cap: float,
    *,
    floor: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """The wait before retry ``attempt`` (1-based): uniform between ``floor`` x the ceiling
    and the ceiling, which is ``base`` doubled on each attempt, at most ``cap``. ``floor`` 0
    is full jitter; 0.5 keeps at least half the wait (a retry that must not come early)."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling * floor, ceiling)  # noqa: S311 - jitter, not crypto
