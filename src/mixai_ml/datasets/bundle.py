"""``BundleDataset``: the deployable model bundle, written atomically."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset

from mixai_inference.bundle import Manifest, read_manifest, write_bundle


class BundleDataset(AbstractDataset[tuple[Manifest, Mapping[str, Path]], Manifest]):
    """Saves ``(manifest, files)`` with :func:`mixai_inference.bundle.write_bundle`
    (a temporary folder renamed into place); loads the manifest.

    Args:
        path: the bundle folder, e.g. ``data/06_models/bundle``.
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _exists(self) -> bool:
        return (self._path / "manifest.json").is_file()

    def load(self) -> Manifest:
        return read_manifest(self._path)

    def save(self, data: tuple[Manifest, Mapping[str, Path]]) -> None:
        manifest, files = data
        write_bundle(self._path, manifest, dict(files))
