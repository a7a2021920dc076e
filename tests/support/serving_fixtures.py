"""Transitional: tests/docs/test_docs.py still imports `ServerPool, servers, serving_jobs`
from here. The helpers moved to tests/support/serving.py and the fixtures to
tests/conftest.py; delete this module once test_docs.py imports ServerPool from
tests.support.serving and takes the fixtures by argument alone."""

from tests.support.serving import ServerPool

# Not fixtures: placeholders for the names test_docs.py imports, so that pytest finds the
# fixtures of those names in tests/conftest.py.
servers = None
serving_jobs = None

__all__ = ["ServerPool", "servers", "serving_jobs"]
