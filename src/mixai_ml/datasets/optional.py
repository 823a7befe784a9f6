"""``OptionalParquetDataset``: a Parquet file that may not exist (an empty frame then)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io.core import AbstractDataset

from mixai_inference._atomic import replace_file


class OptionalParquetDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A Parquet file that only some deployments have, e.g. the demo world's oracle: loads
    an empty frame with ``columns`` when the file is absent; saves atomically.

    Args:
        filepath: The file.
        columns: The columns of the empty frame.
    """

    def __init__(
        self, *, filepath: str, columns: list[str], metadata: dict[str, Any] | None = None
    ) -> None:
        self._path = Path(filepath)
        self._columns = list(columns)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path), "columns": self._columns}

    def _exists(self) -> bool:
        return self._path.is_file()

    def load(self) -> pd.DataFrame:
        if not self._path.is_file():
            return pd.DataFrame(columns=self._columns)
        return pd.read_parquet(self._path)

    def save(self, data: pd.DataFrame) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self._path, lambda staging: data.to_parquet(staging, index=False))
