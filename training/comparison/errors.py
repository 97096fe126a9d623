"""What stops a comparison before anything reaches MLflow."""

from __future__ import annotations


class CompareError(ValueError):
    """A problem the user can fix (bad set name, bad landmarks, unusable data); exit 1."""


class FeatureSetError(CompareError):
    pass


class CompareDataError(CompareError):
    pass
