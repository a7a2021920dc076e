"""The server tier's fixtures: models trained once per session (tests.support.serving_fixtures)."""

from tests.support.serving_fixtures import serving_jobs

__all__ = ["serving_jobs"]
