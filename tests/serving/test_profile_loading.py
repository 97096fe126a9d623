"""The served model's reference profile: read with the scorer, and never a reason not to serve."""

from __future__ import annotations

from dropout_risk.serving.model_holder import _profile


def test_a_damaged_profile_leaves_the_model_serving_without_drift(tmp_path, caplog):
    (tmp_path / "profile.json").write_text('{"format": "something else"}')
    assert _profile(tmp_path, "7") is None
    assert "version 7: its reference profile cannot be read (ValueError)" in caplog.text
    assert _profile(tmp_path / "none", "7") is None  # a model trained before profiles: no warning needed
