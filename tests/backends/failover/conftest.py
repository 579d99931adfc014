"""Fixtures for the failover tests: the end-to-end test plays the REST tests' clip at source speed."""

from rest_support import clip

__all__ = ["clip"]
