"""Risk bands: the thresholds are pinned at their edges, and the API labels every risk with them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from dropout_risk.serving.app import create_app
from dropout_risk.serving.settings import RiskBands
from tests.support.mlflow_store import active_store
from tests.support.serving import Api, serving_settings


@pytest.mark.parametrize(
    ("probability", "band"),
    [(0.0, "low"), (0.1999, "low"), (0.20, "moderate"), (0.3999, "moderate"), (0.40, "high"), (1.0, "high")],
)
def test_default_band_boundaries(probability, band):
    assert RiskBands().band(probability) == band


@pytest.mark.parametrize(
    ("probability", "band"),
    [(0.0499, "low"), (0.05, "moderate"), (0.6999, "moderate"), (0.70, "high"), (0.20, "moderate"), (0.40, "moderate")],
)
def test_custom_band_boundaries(probability, band):
    assert RiskBands(moderate=0.05, high=0.70).band(probability) == band


def test_bands_must_be_ordered_inside_zero_one():
    for moderate, high in ((0.4, 0.4), (0.5, 0.3), (0.0, 0.4), (0.2, 1.0)):
        with pytest.raises(ValidationError):
            RiskBands(moderate=moderate, high=high)


# Histories from reassuring to worrying, so the clients' risks spread over the bands.
PROFILES = [(30.0, 40.0, 0, 4), (22.0, 38.0, 0, 3), (18.0, 35.0, 1, 3), (12.0, 30.0, 2, 2), (6.0, 20.0, 3, 4)]
HISTORIES = {
    f"r{i}": [
        {"session_number": k, "session_date": f"2025-03-{3 + 7 * (k - 1):02d}", "scores": {"ors": ors, "srs": srs}}
        | ({"missed_since_last": missed} if k > 1 else {})
        for k in range(1, sessions + 1)
    ]
    for i, (ors, srs, missed, sessions) in enumerate(
        [
            (30.0, 40.0, 0, 4),
            (22.0, 38.0, 0, 3),
            (18.0, 35.0, 1, 3),
            (12.0, 30.0, 2, 2),
            (6.0, 20.0, 3, 4),
            (3.0, 12.0, 4, 1),
        ]
    )
}


def _record_and_check(api: Api, bands: RiskBands) -> list[float]:
    """Record every history; assert each served, stored and listed risk carries its probability's band."""
    headers = api.new_clinic()
    probabilities = []
    for client_id, history in HISTORIES.items():
        for session in history:
            risk = api.client.post(f"/v1/clients/{client_id}/sessions", json=session, headers=headers).json()["risk"]
            assert risk["band"] == bands.band(risk["probability"])
        body = api.client.get(f"/v1/clients/{client_id}/risk", headers=headers).json()
        assert body["risk"]["band"] == bands.band(body["risk"]["probability"])
        assert len(body["history"]) == len(history)
        for item in body["history"]:
            assert item["band"] == bands.band(item["probability"])
            probabilities.append(item["probability"])
    for item in api.client.get("/v1/clients?order=risk", headers=headers).json()["items"]:
        assert item["band"] == bands.band(item["probability"])
    return probabilities


def test_every_risk_and_history_item_carries_the_band_of_its_probability(api):
    probabilities = _record_and_check(api, RiskBands())
    assert {RiskBands().band(p) for p in probabilities} == {"low", "moderate", "high"}  # every edge is crossed


@pytest.fixture(scope="module")
def spread(champion, tmp_path_factory) -> list[float]:
    """The distinct probabilities the histories get: custom thresholds are placed between them."""
    url = f"sqlite:///{tmp_path_factory.mktemp('spread')}/dropout_risk.db"
    with active_store(champion.store), TestClient(create_app(serving_settings(url), poll=False)) as client:
        probabilities = _record_and_check(Api(client, client.app, "sqlite"), RiskBands())
    return sorted(set(probabilities))


@pytest.fixture(scope="module")
def custom_bands(spread) -> RiskBands:
    assert len(spread) >= 3, "the histories must give at least three distinct risks"
    third = len(spread) // 3
    # Midway between neighbouring risks, so each band holds some of them and no risk sits on an edge.
    moderate = (spread[third - 1] + spread[third]) / 2
    high = (spread[2 * third - 1] + spread[2 * third]) / 2
    return RiskBands(moderate=moderate, high=high)


@pytest.fixture(scope="module")
def custom_api(champion, custom_bands, tmp_path_factory) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path_factory.mktemp('bands')}/dropout_risk.db"
    settings = serving_settings(url, bands=custom_bands)
    with active_store(champion.store), TestClient(create_app(settings, poll=False)) as client:
        yield Api(client, client.app, "sqlite")


def test_custom_thresholds_label_every_risk_through_the_api(custom_api, custom_bands, spread):
    probabilities = _record_and_check(custom_api, custom_bands)
    assert {custom_bands.band(p) for p in probabilities} == {"low", "moderate", "high"}
    assert sorted(set(probabilities)) == spread  # the same model: the thresholds sit where they were placed
