"""The API's risk equals `dropout-risk score` for the same histories, to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from dropout_risk.cli.main import app as cli

runner = CliRunner()


def test_api_risk_equals_batch_scoring(api, champion, tmp_path):
    sessions = pd.read_csv(champion.data["sessions"], dtype={"client_id": str})
    episodes = pd.read_csv(champion.data["episodes"], dtype={"client_id": str})
    chosen = episodes["client_id"].iloc[:40].tolist()  # includes long histories (past landmark 8)
    sessions = sessions[sessions["client_id"].isin(chosen)]
    episodes = episodes[episodes["client_id"].isin(chosen)]
    sessions.to_csv(tmp_path / "s.csv", index=False)
    episodes.to_csv(tmp_path / "e.csv", index=False)
    result = runner.invoke(
        cli,
        [
            "score",
            "--sessions",
            str(tmp_path / "s.csv"),
            "--episodes",
            str(tmp_path / "e.csv"),
            "--out",
            str(tmp_path / "batch.csv"),
            "--model",
            f"models:/dropout-risk/{champion.version}",
        ],
    )
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(tmp_path / "batch.csv", dtype={"client_id": str})

    headers = api.new_clinic()
    served = []
    for client_id, rows in sessions.groupby("client_id", sort=True):
        episode = episodes.set_index("client_id").loc[client_id]
        assert (
            api.client.put(
                f"/v1/clients/{client_id}",
                headers=headers,
                json={"age": float(episode["age"]), "gender": episode["gender"]},
            ).status_code
            == 200
        )
        for row in rows.itertuples():
            scores = {k: getattr(row, k) for k in ("ors", "srs") if not pd.isna(getattr(row, k))}
            body = {
                "session_number": row.session_number,
                "session_date": row.session_date,
                "scores": scores,
                "missed_since_last": None if pd.isna(row.missed_since_last) else int(row.missed_since_last),
            }
            response = api.client.post(f"/v1/clients/{client_id}/sessions", json=body, headers=headers)
            assert response.status_code == 201, response.text
            served.append((client_id, row.session_number, response.json()["risk"]["probability"]))
    served = pd.DataFrame(served, columns=["client_id", "session_number", "api"])
    merged = served.merge(batch, on=["client_id", "session_number"], validate="one_to_one")
    assert len(merged) == len(batch) == len(sessions)
    assert (merged["session_number"] > 8).any()
    np.testing.assert_allclose(merged["api"], merged["risk"], rtol=0, atol=1e-9)
