"""``python -m mixai_ml.edge DIR``: write features.onnx, alignment.onnx and golden.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from mixai_ml.edge import STFT_METHODS, write_edge_graphs
from mixai_ml.edge.golden import write_golden_vectors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mixai_ml.edge", description=__doc__)
    parser.add_argument("folder", type=Path, help="where to write the files (created if missing)")
    parser.add_argument("--stft", choices=STFT_METHODS, default="factored")
    parser.add_argument("--no-golden", action="store_true", help="skip golden.json")
    args = parser.parse_args(argv)
    for path in write_edge_graphs(args.folder, stft=args.stft).values():
        print(path)
    if not args.no_golden:
        print(write_golden_vectors(args.folder / "golden.json"))


if __name__ == "__main__":
    main()
