"""Helpers the tests import: stores, databases, cohorts, real processes. Fixtures live in the conftest files."""
