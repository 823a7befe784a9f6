"""``PersonalFilesDataset``: the files that hold users' data, as places for the purge."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.io.core import AbstractDataset, DatasetError

from mixai_inference.tasks import task_names

if TYPE_CHECKING:
    from mixai_ml.privacy.files import FilePlace


def _kinds() -> dict[str, Any]:
    """:data:`mixai_ml.privacy.files.FILE_KINDS`, imported late: the privacy package reads the
    database through :mod:`mixai_ml.datasets.sql`, whose package imports this module."""
    from mixai_ml.privacy.files import FILE_KINDS

    return FILE_KINDS


class PersonalFilesDataset(AbstractDataset[None, "tuple[FilePlace, ...]"]):
    """Every file that holds users' data, grouped in named places of one kind each.

    Args:
        places: name -> ``{"kind": ..., "filepath": ...}`` for files (``{task}`` in the path
            stands for every registered task), or ``{"kind": ..., "path": folder, "suffixes":
            [".jsonl", ...]}`` for every file with one of those suffixes under a folder (all
            files when there are none). ``kind`` is a key of
            :data:`mixai_ml.privacy.files.FILE_KINDS`. Paths are the same locations as the
            datasets that write the files (through ``globals.yml``).

    Loading lists the files that exist now; saving is not possible.
    """

    def __init__(
        self, *, places: Mapping[str, Mapping[str, Any]], metadata: dict[str, Any] | None = None
    ) -> None:
        for name, entry in places.items():
            if entry.get("kind") not in _kinds():
                raise DatasetError(
                    f"place {name!r}: kind must be one of {sorted(_kinds())}, "
                    f"got {entry.get('kind')!r}"
                )
            if ("filepath" in entry) == ("path" in entry):
                raise DatasetError(f"place {name!r}: give either a filepath or a path (folder)")
            if isinstance(entry.get("suffixes", []), str):
                raise DatasetError(f"place {name!r}: suffixes is a list, e.g. [.jsonl]")
        self._places = {name: dict(entry) for name, entry in places.items()}
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"places": self._places}

    @staticmethod
    def _files(entry: Mapping[str, Any]) -> tuple[Path, ...]:
        if "path" in entry:
            folder = Path(entry["path"])
            if not folder.is_dir():
                return ()
            suffixes = tuple(entry.get("suffixes") or ("",))
            found = {path for suffix in suffixes for path in folder.rglob(f"*{suffix}")}
            return tuple(sorted(path for path in found if path.is_file()))
        template = str(entry["filepath"])
        paths = {Path(template.replace("{task}", task)) for task in task_names()}
        return tuple(sorted(path for path in paths if path.is_file()))

    def load(self) -> tuple[FilePlace, ...]:
        return tuple(
            _kinds()[entry["kind"]](name, self._files(entry))
            for name, entry in self._places.items()
        )

    def save(self, data: None) -> None:
        raise DatasetError("PersonalFilesDataset is read-only: the purge changes the files")
