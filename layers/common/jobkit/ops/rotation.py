"""Rotating a client's credential: Secrets Manager's four rotation steps.

- createSecret: a new token, stored as the AWSPENDING version;
- setSecret: registered with the external system, authenticated with the current token;
- testSecret: a call with the new token must succeed, or the rotation stops here;
- finishSecret: the new version becomes AWSCURRENT.

A failed step raises and leaves AWSCURRENT where it was, so every function keeps using the old
token (the provider keeps two tokens active, so the old one stays valid after a rotation too).
The steps run when Secrets Manager calls them (``RotationEvent``), or in order, for every
client's secret, from the rotation schedule (``rotate_all``).
"""

import secrets
import uuid
from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.credentials import ExternalCredential, parse_credential
from jobkit.adapters.external import ExternalSystem
from jobkit.domain.envelope import Identifier
from jobkit.domain.errors import PermanentError
from jobkit.observability import logger

Step = Literal["createSecret", "setSecret", "testSecret", "finishSecret"]
STEPS: tuple[Step, ...] = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationEvent(BaseModel):
    """What Secrets Manager sends for each step."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    secret_id: str = Field(alias="SecretId", min_length=1)
    token: str = Field(alias="ClientRequestToken", min_length=32, max_length=64)
    step: Step = Field(alias="Step")


class RotateRequest(BaseModel):
    """From the rotation schedule (every client) or an operator (the clients named)."""

    model_config = ConfigDict(extra="forbid")

    client_ids: list[Identifier] | None = None


class _Registered(BaseModel):
    client_id: str
    active: int


class CredentialRotator:
    def __init__(
        self,
        secrets_client: Any,
        external: Callable[[ExternalCredential], ExternalSystem],
        prefix: str,
    ) -> None:
        self._secrets = secrets_client
        self._external = external
        self._prefix = prefix

    # -- the four steps ---------------------------------------------------------------------

    def run_step(self, event: RotationEvent) -> None:
        versions = self._secrets.describe_secret(SecretId=event.secret_id).get(
            "VersionIdsToStages", {}
        )
        if event.step != "createSecret" and event.token not in versions:
            raise PermanentError(f"secret {event.secret_id}: no version {event.token}")
        if "AWSCURRENT" in versions.get(event.token, []) and event.step != "finishSecret":
            return  # this version is already current: the rotation is over
        step = {
            "createSecret": self._create,
            "setSecret": self._set,
            "testSecret": self._test,
            "finishSecret": self._finish,
        }[event.step]
        step(event.secret_id, event.token)
        logger.info("rotation step done", extra={"secret": event.secret_id, "step": event.step})

    def _create(self, secret_id: str, token: str) -> None:
        current = self._read(secret_id, stage="AWSCURRENT")
        try:
            self._read(secret_id, stage="AWSPENDING", version=token)
            return  # created by an earlier attempt of this step
        except self._secrets.exceptions.ResourceNotFoundException:
            pass
        pending = current.model_copy(update={"token": secrets.token_urlsafe(32)})
        self._secrets.put_secret_value(
            SecretId=secret_id,
            ClientRequestToken=token,
            SecretString=pending.model_dump_json(),
            VersionStages=["AWSPENDING"],
        )

    def _set(self, secret_id: str, token: str) -> None:
        current = self._read(secret_id, stage="AWSCURRENT")
        pending = self._read(secret_id, stage="AWSPENDING", version=token)
        # Registering an already active token is a no-op on the provider: safe to repeat.
        self._external(current).post_as(
            _Registered,
            f"{current.route}/clients/{current.client_id}/credentials",
            {"token": pending.token},
        )

    def _test(self, secret_id: str, token: str) -> None:
        pending = self._read(secret_id, stage="AWSPENDING", version=token)
        self._external(pending).get(f"{pending.route}/clients/{pending.client_id}/health")

    def _finish(self, secret_id: str, token: str) -> None:
        versions = self._secrets.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
        current = next((v for v, stages in versions.items() if "AWSCURRENT" in stages), None)
        if current == token:
            return
        self._secrets.update_secret_version_stage(
            SecretId=secret_id,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=current,
        )

    def _read(self, secret_id: str, stage: str, version: str | None = None) -> ExternalCredential:
        kwargs = {"SecretId": secret_id, "VersionStage": stage}
        if version is not None:
            kwargs["VersionId"] = version
        raw = self._secrets.get_secret_value(**kwargs)["SecretString"]
        return parse_credential(raw, secret_id)

    # -- a whole rotation -------------------------------------------------------------------

    def rotate(self, secret_id: str) -> str:
        """The four steps in order; returns the new version id."""
        token = str(uuid.uuid4())
        for step in STEPS:
            self.run_step(RotationEvent(secret_id=secret_id, token=token, step=step))
        return token

    def rotate_all(self, request: RotateRequest) -> dict[str, Any]:
        """Rotate every client's secret (or the ones named); one failure stops only itself."""
        names = (
            [f"{self._prefix}/{client_id}" for client_id in request.client_ids]
            if request.client_ids is not None
            else self._secret_names()
        )
        rotated: list[str] = []
        failed: dict[str, str] = {}
        for name in names:
            client_id = name.rsplit("/", 1)[-1]
            try:
                self.rotate(name)
            except Exception as exc:  # noqa: BLE001 - reported; the old credential stays current
                failed[client_id] = f"{type(exc).__name__}: {exc}"[:300]
                logger.error(
                    "credential rotation failed",
                    extra={"client_id": client_id, "reason": failed[client_id]},
                )
                with single_metric(
                    name="CredentialRotationFailed", unit=MetricUnit.Count, value=1
                ) as metric:
                    metric.add_metadata("client_id", client_id)
            else:
                rotated.append(client_id)
                logger.info("credential rotated", extra={"client_id": client_id})
        return {"rotated": rotated, "failed": failed}

    def _secret_names(self) -> list[str]:
        names: list[str] = []
        paginator = self._secrets.get_paginator("list_secrets")
        for page in paginator.paginate(Filters=[{"Key": "name", "Values": [f"{self._prefix}/"]}]):
            names += [
                s["Name"]
                for s in page.get("SecretList", [])
                if s["Name"].startswith(self._prefix + "/")
            ]
        return sorted(names)
