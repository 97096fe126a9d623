"""Issue 13's false-alarm check through the real API, on SQLite and PostgreSQL.

Ten clinics replay ten blocks of 130 clients of the population simulated like the champion's
training data (the one tests/serving/test_monitoring_seeds.py cuts into blocks of 250 and judges
at the service function): at most one may be ``recalibrate``. 130 clients leave each clinic more
than ``monitoring.min_ended`` (100) ended episodes, so every clinic is judged, in about half the
time of 250. Each clinic's sessions go in through ``POST /fhir/r4`` (batch Bundles, the
record-system path; ``replay_fhir``), covariates and closing through ``PUT /v1/clients/{id}``, and
the statuses come from ``GET /v1/monitoring`` with the admin key.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.serving.test_monitoring_seeds import CLINICS, PER_CLINIC
from tests.support.replay import batch_risks, clinic_sample, replay_fhir
from tests.support.serving import ADMIN_KEY

PER_HTTP = 130
CHECKED = 25  # clients of each clinic whose served history is compared with batch scoring


def _served_equal_batch(api, headers, block, client_ids: list[str]) -> None:
    """The risks the API served after each session equal the champion's batch scores of the same sessions."""
    _, risks = batch_risks(block, api.app.state.holder.current.compiled)
    for client_id in client_ids[:CHECKED]:
        history = api.client.get(f"/v1/clients/{client_id}/risk", headers=headers).json()["history"]
        expected = risks.loc[risks["client_id"] == client_id, "risk"].tolist()
        assert [h["probability"] for h in history] == pytest.approx(expected, abs=1e-12), client_id


@pytest.mark.slow  # about 50 s a backend
def test_ten_clinics_like_the_training_data_are_at_most_once_recalibrate(api, cohorts):
    population = cohorts.simulate(CLINICS * PER_CLINIC, seed=18)
    names = []
    for i in range(CLINICS):
        name, headers = api.add_clinic()
        block = clinic_sample(population, i, PER_HTTP)
        recorded = replay_fhir(api.client, headers, block)
        if i == 0:
            _served_equal_batch(api, headers, block, recorded)
        names.append(name)
    response = api.client.get("/v1/monitoring", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200, response.text
    clinics = {c["clinic"]: c for c in response.json()["clinics"]}
    for name in names:
        current = clinics[name]["current"]
        print(f"{api.backend} {name}: {current['episodes']} episodes, O/E {current['oe']:.2f} {current['oe_ci']}")
        assert current["episodes"] >= response.json()["min_ended"]
    statuses = Counter(clinics[name]["status"]["status"] for name in names)
    print(f"{api.backend}: like clinics {dict(statuses)}")
    assert statuses["recalibrate"] <= 1 and statuses["ok"] >= 8, statuses
