"""Edge inference: ``mixai_inference``'s feature extraction and aligner as ONNX graphs that
onnxruntime-web runs in a browser, generated here from the same constants (filterbanks,
K-weighting, true-peak FIR, configuration) so that both sides stay one source.

>>> from mixai_ml.edge import write_edge_graphs
>>> paths = write_edge_graphs("data/06_models/edge")  # doctest: +SKIP

See docs/features.md ("In the browser") for the graphs' inputs, outputs and tolerances.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import onnx

from mixai_inference.bundle import EdgeGraph, sha256_bytes
from mixai_ml.edge._dsp import STFT_METHODS, STFT_PRECISIONS, StftMethod, StftPrecision
from mixai_ml.edge.alignment_graph import ALIGNMENT_GRAPH_INPUTS, build_alignment_graph
from mixai_ml.edge.feature_graph import (
    FEATURE_GRAPH_INPUTS,
    SUPPORTED_SAMPLE_RATES,
    build_feature_graph,
)

__all__ = [
    "ALIGNMENT_GRAPH_INPUTS",
    "EDGE_GRAPH_FILES",
    "FEATURE_GRAPH_INPUTS",
    "STFT_METHODS",
    "STFT_PRECISIONS",
    "SUPPORTED_SAMPLE_RATES",
    "build_alignment_graph",
    "build_edge_graphs",
    "build_feature_graph",
    "edge_bundle_entries",
    "write_edge_graphs",
]

#: File name of each graph in a bundle folder.
EDGE_GRAPH_FILES = {"features": "features.onnx", "alignment": "alignment.onnx"}

#: The metadata key of each graph that names its output vector's values.
_OUTPUT_NAMES_KEY = {"features": "feature_names", "alignment": "alignment_feature_names"}


def build_edge_graphs(
    *,
    stft: StftMethod = "factored",
    feature_precision: StftPrecision = "float64",
    alignment_precision: StftPrecision = "float32",
) -> dict[str, onnx.ModelProto]:
    """The edge graphs by name (``features``, ``alignment``; keys of :data:`EDGE_GRAPH_FILES`).

    The defaults are the measured best (docs/benchmarks.md, "Edge graphs").
    """
    return {
        "features": build_feature_graph(stft, feature_precision),
        "alignment": build_alignment_graph(stft, alignment_precision),
    }


def write_edge_graphs(
    folder: str | Path,
    *,
    stft: StftMethod = "factored",
    feature_precision: StftPrecision = "float64",
    alignment_precision: StftPrecision = "float32",
) -> dict[str, Path]:
    """Write ``features.onnx`` and ``alignment.onnx`` into ``folder`` (created if missing).

    Returns the path of each graph by name (``features``, ``alignment``).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    models = build_edge_graphs(
        stft=stft, feature_precision=feature_precision, alignment_precision=alignment_precision
    )
    paths = {}
    for name, model in models.items():
        path = out / EDGE_GRAPH_FILES[name]
        path.write_bytes(model.SerializeToString())
        paths[name] = path
    return paths


def edge_bundle_entries(
    graphs: Mapping[str, bytes],
) -> tuple[dict[str, EdgeGraph], dict[str, bytes]]:
    """The manifest's ``edge`` entries and the files of serialized edge graphs.

    Args:
        graphs: Name (a key of :data:`EDGE_GRAPH_FILES`) → the graph's bytes.

    Raises:
        ValueError: If a name is unknown or a graph lacks the metadata the entry needs.
    """
    entries, files = {}, {}
    for name, content in graphs.items():
        if name not in EDGE_GRAPH_FILES:
            raise ValueError(f"unknown edge graph {name!r}; expected {sorted(EDGE_GRAPH_FILES)}")
        metadata = {p.key: p.value for p in onnx.load_from_string(content).metadata_props}
        keys = ("supported_sample_rates", _OUTPUT_NAMES_KEY[name])
        if not set(keys) <= set(metadata):
            raise ValueError(f"edge graph {name!r} lacks the metadata {list(keys)}")
        file = EDGE_GRAPH_FILES[name]
        entries[name] = EdgeGraph(
            file,
            sha256_bytes(content),
            tuple(json.loads(metadata[keys[0]])),
            tuple(json.loads(metadata[keys[1]])),
        )
        files[file] = content
    return entries, files
