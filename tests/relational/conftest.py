"""The pbc tables and schema (shared with tests/medical)."""

from tests.medical.conftest import pbc_schema, pbc_tables  # noqa: F401  (pytest fixtures)
