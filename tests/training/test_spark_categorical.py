"""The spark engine profiles levels of text columns only: numeric codes declared categorical are refused, not
silently turned into an all-missing category."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="the Spark engine is the optional extra: pip install '.[spark]'")

from dropout_risk.features.config import FeatureConfig  # noqa: E402
from dropout_risk.features.instruments import default_registry  # noqa: E402
from dropout_risk.training.spark.check import SparkCheck  # noqa: E402


def test_declared_numeric_codes_are_refused_on_spark():
    check = SparkCheck(problems=[], warnings=[], kinds={"arm": "numeric"}, trajectory_sums=pd.DataFrame())
    with pytest.raises(ValueError, match="categorical_covariates names numeric column.s. arm: the spark engine"):
        check.infer_spec(default_registry(), FeatureConfig(categorical_covariates=["arm"]))
    assert check.infer_spec(default_registry(), FeatureConfig()).numeric_covariates == ("arm",)
