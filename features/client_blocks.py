"""Running per-client quantities on a session table sorted by client, then session number.

The landmark features are all "so far" quantities; these operations compute them for every row of
every client at once (cumulative sums, running maxima of row positions as a forward fill), never
reaching across into the previous client's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClientBlocks:
    """Client blocks of a table sorted by client then session.

    ``codes`` is the client's index in the sorted unique ids, ``first_row`` the
    position of the client's first row, both per row.
    """

    codes: np.ndarray
    first_row: np.ndarray

    @classmethod
    def from_sorted_codes(cls, codes: np.ndarray) -> ClientBlocks:
        rows = np.arange(len(codes))
        starts = np.ones(len(codes), dtype=bool)
        starts[1:] = codes[1:] != codes[:-1]
        first_row = np.maximum.accumulate(np.where(starts, rows, 0))
        return cls(codes, first_row)

    def last_position(self, mask: np.ndarray) -> np.ndarray:
        """Per row: position of the latest row so far (this one included) where mask holds, -1 if none.

        A running maximum of positions is a forward fill; checking it against the
        client's first row keeps it from reaching into the previous client.
        """
        latest = np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1))
        return np.where(latest >= self.first_row, latest, -1)

    def previous_position(self, mask: np.ndarray) -> np.ndarray:
        """Per row: position of the latest row strictly before this one where mask holds, -1 if none."""
        before = np.concatenate([[-1], self.last_position(mask)[:-1]]).astype(np.int64)
        # At a client's first row, `before` points into the previous client: below first_row.
        return np.where(before >= self.first_row, before, -1)

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per row: how many rows so far (this one included) satisfy mask. Integer, so exact."""
        running = np.cumsum(mask, dtype=np.int64)
        return running - (running[self.first_row] - mask[self.first_row])

    def _grid(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(block, position) of each row in a clients x sessions grid, and the grid's shape."""
        rows = np.arange(len(self.codes))
        block = np.cumsum(rows == self.first_row) - 1
        position = rows - self.first_row
        shape = (int(block[-1]) + 1, int(position.max()) + 1) if len(rows) else (0, 0)
        return block, position, shape

    def _accumulate(self, values: np.ndarray, ufunc: np.ufunc, pad: float) -> np.ndarray:
        # Lay each client's rows out along one grid row and accumulate along it: each client's
        # running value is summed in session order from its own rows only, exactly as a per-client
        # loop would (a global cumsum minus an offset would lose precision on large tables).
        if len(values) == 0 or self.first_row[-1] == 0:  # one client (the service's case): no grid needed
            return ufunc.accumulate(values)
        block, position, shape = self._grid()
        grid = np.full(shape, pad)
        grid[block, position] = values
        return ufunc.accumulate(grid, axis=1)[block, position]

    def cumsum(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Running sums per client (NaN-free input)."""
        return {name: self._accumulate(np.asarray(v, dtype=float), np.add, 0.0) for name, v in values.items()}

    def cummin(self, values: np.ndarray) -> np.ndarray:
        return self._accumulate(np.asarray(values, dtype=float), np.minimum, np.inf)


def take(values: np.ndarray, position: np.ndarray) -> np.ndarray:
    """values[position] as float, NaN where position is -1."""
    found = position >= 0
    if not found.any():
        return np.full(len(position), np.nan)
    return np.where(found, values[np.where(found, position, 0)].astype(float), np.nan)


def flag(condition: np.ndarray, known: np.ndarray) -> np.ndarray:
    return np.where(known, condition.astype(float), np.nan)
