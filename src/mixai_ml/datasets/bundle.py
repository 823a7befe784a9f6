"""``BundleDataset``: the deployable model bundle, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mixai_inference.adapters import UserAdapters, bundle_adapters
from mixai_inference.bundle import MANIFEST_NAME, Manifest, read_manifest, write_bundle
from mixai_ml.datasets.folder import FolderDataset

BundleFiles = Mapping[str, bytes | str | os.PathLike[str]]
"""File name -> content, or a path to copy it from."""


class BundleDataset(FolderDataset[tuple[Manifest, BundleFiles], Manifest]):
    """Saves ``(manifest, files)`` with :func:`mixai_inference.bundle.write_bundle`
    (a temporary folder renamed into place); loads the manifest.

    Args:
        path: the bundle folder, e.g. ``data/06_models/bundle``.
    """

    marker = MANIFEST_NAME

    def load(self) -> Manifest:
        return read_manifest(self._path)

    def save(self, data: tuple[Manifest, BundleFiles]) -> None:
        manifest, files = data
        write_bundle(self._path, manifest, dict(files))

    def adapters(self) -> UserAdapters | None:
        """The users' adapters the bundle ships, if any (to carry them into a rebuilt
        bundle); an unusable store is left behind with a warning."""
        if not self._exists():
            return None
        return bundle_adapters(self.load(), self._path)[0]
