"""Edge inference: ``mixai_inference``'s feature extraction and aligner as ONNX graphs that
onnxruntime-web runs in a browser, generated here from the same constants (filterbanks,
K-weighting, true-peak FIR, configuration) so that both sides stay one source.

>>> from mixai_ml.edge import write_edge_graphs
>>> paths = write_edge_graphs("data/06_models/edge")  # doctest: +SKIP

See docs/features.md ("In the browser") for the graphs' inputs, outputs and tolerances.
"""

from __future__ import annotations

from pathlib import Path

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
    "build_feature_graph",
    "write_edge_graphs",
]

#: File name of each graph in a bundle folder.
EDGE_GRAPH_FILES = {"features": "features.onnx", "alignment": "alignment.onnx"}


def write_edge_graphs(
    folder: str | Path,
    *,
    stft: StftMethod = "factored",
    feature_precision: StftPrecision = "float64",
    alignment_precision: StftPrecision = "float32",
) -> dict[str, Path]:
    """Write ``features.onnx`` and ``alignment.onnx`` into ``folder`` (created if missing).

    Returns the path of each graph by name (``features``, ``alignment``). The defaults are
    the measured best (docs/benchmarks.md, "Edge graphs").
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    models = {
        "features": build_feature_graph(stft, feature_precision),
        "alignment": build_alignment_graph(stft, alignment_precision),
    }
    paths = {}
    for name, model in models.items():
        path = out / EDGE_GRAPH_FILES[name]
        path.write_bytes(model.SerializeToString())
        paths[name] = path
    return paths
