"""Which clients a run plans: the enabled ones, those named, and on a scheduled fire those
due at its time; what it meets besides (invalid rows, disabled ones named, those not due) is
kept to be reported on the run."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jobkit.adapters.config import ClientConfig, InvalidClientConfig
from jobkit.domain.job import unused_fields_error
from jobkit.observability import logger

# Scheduler gives the fire's own time; without it a fire is dated by the minute it ran in,
# which may be up to a minute early or late: a client due on every fire must not skip one.
_JITTER = timedelta(minutes=1)


def is_due(config: ClientConfig, fired_at: datetime) -> bool:
    """Whether the scheduled fire at ``fired_at`` plans this client: it was never planned by
    a schedule, or its frequency has passed since the fire that last planned it (less the
    jitter of a fire without Scheduler's time, at most half the frequency).

    Decided by the fires' times alone, never the clock: a fire delivered twice, or resumed
    after a crash, decides the same way (the fire that planned it is due again)."""
    last = config.last_scheduled_at
    if last is None or last == fired_at:
        return True
    if last > fired_at:
        return False  # a later fire planned it already: this one arrived late
    frequency = timedelta(minutes=config.frequency_minutes)
    return fired_at - last >= frequency - min(_JITTER, frequency / 2)


@dataclass
class Selection:
    """The clients a run plans: enabled ones, invalid configurations, those not due (on a
    scheduled fire at ``fired_at``), and what to say. ``uses``: the job's query fields."""

    job_type: str
    fired_at: datetime | None
    uses: frozenset[str]
    clients: list[ClientConfig] = field(default_factory=list)
    invalid: list[InvalidClientConfig] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    not_due: int = 0
    disabled: list[str] = field(default_factory=list)
    planned: int = 0  # clients taken so far, of every chunk

    def take_clients(self) -> list[ClientConfig]:
        """The clients taken since the last call (a chunk), no longer held here."""
        taken, self.clients = self.clients, []
        return taken

    def report_named(self, missing: set[str]) -> None:
        """What became of clients a run named and does not plan: unknown, or disabled."""
        self.issues += [f"client {c}: not configured for {self.job_type}" for c in sorted(missing)]
        self.issues += [f"client {c}: disabled, not run" for c in self.disabled]

    def take(self, config: ClientConfig | InvalidClientConfig) -> None:
        if isinstance(config, ClientConfig):
            if not config.enabled:
                self.disabled.append(config.client_id)
                return
            if self.fired_at is not None and not is_due(config, self.fired_at):
                self.not_due += 1
                return
            refused = unused_fields_error(self.job_type, self.uses, config)
            if refused is None:
                self.clients.append(config)
                self.planned += 1
                return
            config = InvalidClientConfig(self.job_type, config.client_id, refused)
        logger.error(
            "invalid client configuration",
            extra={"client_id": config.client_id, "reason": config.reason},
        )
        self.invalid.append(config)
        self.issues.append(f"client {config.client_id}: invalid configuration: {config.reason}")


def named(client_id: str, wanted: set[str] | None, seen: set[str]) -> bool:
    """Whether a run that names ``wanted`` clients (None: every one) plans this one; the
    named ones met are added to ``seen``."""
    if wanted is None:
        return True
    seen.add(client_id)
    return client_id in wanted
