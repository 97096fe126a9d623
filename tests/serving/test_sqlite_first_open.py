"""Connections opening a fresh SQLite file at once all succeed (replicas, or `keys create` beside `serve`).

Each new connection switches the file to WAL; two switching at once can deadlock on the
exclusive lock, and SQLite then fails one of them with "database is locked" without waiting.
CI saw it as one of four migrating processes failing; in one process, threads reproduce it
in a few percent of rounds, so enough rounds fail on the unfixed code almost surely.
"""

from __future__ import annotations

import threading

from dropout_risk.serving.db import make_engine

ROUNDS = 150
CONNECTIONS = 6


def _open_together(url: str) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(CONNECTIONS)

    def open_one() -> None:
        engine = make_engine(url)
        barrier.wait()
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception as error:  # noqa: BLE001 - any failure to open is what this test counts
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=open_one) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_connections_opening_a_fresh_file_together_all_succeed(tmp_path):
    failed = [
        str(errors[0]).splitlines()[0]
        for round_ in range(ROUNDS)
        if (errors := _open_together(f"sqlite:///{tmp_path / f'fresh-{round_}.db'}"))
    ]
    assert failed == [], f"{len(failed)} of {ROUNDS} rounds failed to open: {failed[:3]}"


def test_the_file_is_in_wal_mode(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
