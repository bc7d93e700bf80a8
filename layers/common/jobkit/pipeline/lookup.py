"""The job and the client configuration an item names, read once per invocation."""

from collections.abc import Mapping
from typing import Any

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.domain.errors import UnknownJobTypeError
from jobkit.domain.job import Job


class Lookups:
    def __init__(self, jobs: Mapping[str, Job[Any]], configs: ConfigStore) -> None:
        self._jobs = jobs
        self._configs = configs
        self._clients: dict[tuple[str, str], ClientConfig] = {}

    def forget(self) -> None:
        """A new invocation reads configurations afresh: a client edited since is seen."""
        self._clients.clear()

    def job(self, job_type: str) -> Job[Any]:
        job = self._jobs.get(job_type)
        if job is None:
            raise UnknownJobTypeError(f"unknown job type {job_type!r}")
        return job

    def client(self, job_type: str, client_id: str) -> ClientConfig:
        key = (job_type, client_id)
        if key not in self._clients:
            self._clients[key] = self._configs.get(job_type, client_id)
        return self._clients[key]
