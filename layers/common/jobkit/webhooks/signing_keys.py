"""A subscription's signing secrets, as its Secrets Manager secret keeps them: numbered
versions, the newest signing alone once the older ones' grace periods end.

Rotating adds a version and gives the current one a ``retires_at``: until then deliveries
carry both signatures, so a receiver can switch to the new secret whenever it likes.
"""

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobkit.webhooks.signing import new_secret


class SigningKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int = Field(ge=1)
    secret: str = Field(repr=False)  # never shown in a repr, a log or an error
    retires_at: datetime | None = None

    def signs_at(self, now: datetime) -> bool:
        return self.retires_at is None or now < self.retires_at


class SigningKeys(BaseModel):
    model_config = ConfigDict(frozen=True)

    keys: tuple[SigningKey, ...] = Field(min_length=1)

    @classmethod
    def first(cls) -> "SigningKeys":
        return cls(keys=(SigningKey(version=1, secret=new_secret()),))

    @classmethod
    def parse(cls, stored: str) -> "SigningKeys":
        """The secret's value: these keys, as JSON; a bare secret (a subscription made before
        secrets had versions) is version 1."""
        try:
            return cls.model_validate_json(stored)
        except ValidationError:
            return cls(keys=(SigningKey(version=1, secret=stored),))

    @property
    def newest(self) -> SigningKey:
        return max(self.keys, key=lambda key: key.version)

    def signing(self, now: datetime) -> list[SigningKey]:
        """The keys that sign a delivery sent now, newest first."""
        keys = sorted(self.keys, key=lambda key: key.version, reverse=True)
        return [key for key in keys if key.signs_at(now)] or [self.newest]

    def rotated(self, grace: timedelta, now: datetime | None = None) -> "SigningKeys":
        """A new newest key; the keys that still sign now keep signing for ``grace`` more
        (or until their own earlier end), and the retired ones are dropped."""
        at = now or datetime.now(UTC)
        ends = at + grace
        kept = tuple(
            key.model_copy(update={"retires_at": min(key.retires_at or ends, ends)})
            for key in self.signing(at)
        )
        fresh = SigningKey(version=self.newest.version + 1, secret=new_secret())
        return SigningKeys(keys=(fresh, *kept))
