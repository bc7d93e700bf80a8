"""Typed errors. Their class, never their text, decides what happens to an item."""


class JobkitError(Exception):
    """Base of every error the platform raises on purpose."""


class PermanentError(JobkitError):
    """Retrying cannot help: the item is dead-lettered at once with this reason."""


class TransientError(JobkitError):
    """May succeed later: the item is retried with backoff until maxReceiveCount."""


class InvalidEnvelopeError(PermanentError):
    """A work message that is not a valid envelope."""


class InvalidPayloadError(PermanentError):
    """An external record that fails the job's validation."""


class TenantMismatchError(PermanentError):
    """A record that belongs to another client than the item that carries it."""


class RecordNotFoundError(PermanentError):
    """The platform has no record with this id for this client."""


class ConfigNotFoundError(PermanentError):
    """No configuration row for this job type and client."""


class PromotionRefusedError(PermanentError):
    """A client cannot leave its pilot yet (or is not a pilot)."""


class UnknownJobTypeError(PermanentError):
    """A job type no module declares."""


class JobModuleError(TransientError):
    """A job type's module failed to load: its items retry (a fix is a deploy away), then
    dead-letter for redrive."""


class ExternalRejectedError(PermanentError):
    """The external system refused the request (4xx other than 408/429)."""


class ExternalUnavailableError(TransientError):
    """The external system failed, timed out or throttled us after our retries."""


class ShardBusyError(TransientError):
    """A planning shard that another attempt is planning now: this attempt fails, and
    Lambda's asynchronous retry comes back once that one has ended (``jobkit.runs.shards``)."""


class EnqueueError(TransientError):
    """Work messages that SQS still refused after resending."""


class ConcurrentUpdateError(TransientError):
    """A guarded write lost a race; reading again and retrying resolves it."""


class ExternalAuthError(TransientError):
    """The external system refused our credentials, even freshly read (they may be rotating)."""


class ClientLevelError(TransientError):
    """A failure of a whole client's work (its circuit is open): retried on a schedule."""


class ThrottledError(TransientError):
    """DynamoDB kept throttling part of a batch request, even after waiting."""
