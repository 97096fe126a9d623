"""The per-client running operations the landmark features are built from (``ClientBlocks``)."""

from __future__ import annotations

import tracemalloc

import numpy as np

from dropout_risk.features.client_blocks import ClientBlocks

# Two clients: rows 0-2 are client 0's sessions 1-3, rows 3-4 client 1's sessions 1-2.
BLOCKS = ClientBlocks.from_sorted_codes(np.array([0, 0, 0, 1, 1]))


def test_positions_are_minus_one_where_no_row_of_the_client_qualifies():
    mask = np.array([False, True, False, False, True])
    # Client 1's first row finds nothing: client 0's row 1 is not its own.
    np.testing.assert_array_equal(BLOCKS.last_position(mask), [-1, 1, 1, -1, 4])
    np.testing.assert_array_equal(BLOCKS.previous_position(mask), [-1, -1, 1, -1, -1])


def test_running_sums_of_many_clients_take_memory_for_their_own_rows_only():
    # Each client's rows are laid out along one grid row as long as the longest history: 1,000
    # clients of two sessions are a 1,000 x 2 grid (16 kB), not one as wide as the whole table.
    blocks = ClientBlocks.from_sorted_codes(np.repeat(np.arange(1000), 2))
    tracemalloc.start()
    try:
        sums = blocks.cumsum({"v": np.ones(2000)})["v"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(sums, np.tile([1.0, 2.0], 1000))
    assert peak < 1_000_000, f"{peak / 1e6:.1f} MB for 2,000 rows"


def test_running_sums_and_minima_stay_within_a_client_whose_predecessor_had_one_session():
    # The last client starts at row 1: its rows must not be accumulated onto client 0's only row.
    blocks = ClientBlocks.from_sorted_codes(np.array([0, 1, 1]))
    np.testing.assert_array_equal(blocks.cumsum({"v": np.array([5.0, 1.0, 2.0])})["v"], [5, 1, 3])
    np.testing.assert_array_equal(blocks.cummin(np.array([1.0, 3.0, 2.0])), [1, 3, 2])
