"""A fake external system on loopback: paged completed records, remembered acks, faults."""

from external_system.server import ExternalSystemServer, start_server

__all__ = ["ExternalSystemServer", "start_server"]
