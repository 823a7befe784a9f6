"""Draw docs/img/architecture.png, the data flow of MIXAI ML (docs/architecture.md, README).

Usage: ``.venv/bin/python docs/_scripts/architecture.py [OUTPUT.png]``
(default: docs/img/architecture.png beside this folder).
"""

from __future__ import annotations

import sys
from itertools import pairwise
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "img" / "architecture.png"

COLOURS = {
    "app": "#fde2c8",  # the MIXAI web app's data
    "kedro": "#d6e6f5",  # Kedro pipelines
    "artifact": "#e2f0d9",  # files the pipelines write
    "production": "#f3d9ec",  # the slim runtime in production
}

TOP, MIDDLE, HEIGHT = 6.5, 3.6, 1.5  # rows: the training chain, then the other pipelines
BUS = 5.8  # the database's line into the pipelines
LANE = 1.0  # production's way back into the database

# name: (x, y, width, colour, title, detail)
BOXES = {
    "audio": (0.2, TOP, 2.6, "app", "Audio files", "vocal, instrumental and mix\nof each job"),
    "db": (
        0.2,
        2.4,
        2.6,
        "app",
        "Application database",
        "PostgreSQL · SQLite (demo)\n\njobs · labels\nml_consent · ml_exclusions\n"
        "ab_test_assignments\nab_test_metrics\nmodel_metrics\n\nwritten by the MIXAI app",
    ),
    "features": (3.2, TOP, 2.4, "kedro", "features", "175 track + 23 alignment\nfeatures"),
    "training": (
        6.0,
        TOP,
        2.4,
        "kedro",
        "training",
        "consent · exclusions · gate\n3 tasks, PyTorch",
    ),
    "evaluation": (8.8, TOP, 2.4, "kedro", "evaluation", "vs rules · scikit-learn ·\nactive model"),
    "export": (11.6, TOP, 2.4, "kedro", "export", "ONNX · parity ·\nmodel_registry"),
    "bundle": (
        14.6,
        TOP,
        3.0,
        "artifact",
        "Bundle",
        "data/06_models/bundle\nmanifest + ONNX files",
    ),
    "purge": (3.2, MIDDLE, 2.4, "kedro", "purge", "withdrawn users' data,\ndaily"),
    "ab": (6.0, MIDDLE, 2.4, "kedro", "ab_analysis", "SRM · CUPED ·\nsequential tests"),
    "monitoring": (8.8, MIDDLE, 2.4, "kedro", "monitoring", "latency · errors ·\nonline accuracy"),
    "reports": (11.6, MIDDLE, 2.4, "artifact", "Reports", "data/08_reporting\nMarkdown + PNG"),
    "production": (
        14.6,
        MIDDLE,
        3.0,
        "production",
        "Production",
        "mixai_inference wheel\nflags · A/B routing · rollout\nfallback to the rules",
    ),
}


def _box_height(name: str) -> float:
    return 3.85 if name == "db" else HEIGHT


def _centre(name: str) -> tuple[float, float]:
    x, y, width = BOXES[name][:3]
    return x + width / 2, y + _box_height(name) / 2


def _edge(name: str, side: str) -> tuple[float, float]:
    """Midpoint of a side (left, right, top, bottom) of a box."""
    x, y, width = BOXES[name][:3]
    cx, cy = _centre(name)
    return {
        "left": (x, cy),
        "right": (x + width, cy),
        "top": (cx, y + _box_height(name)),
        "bottom": (cx, y),
    }[side]


def draw() -> Figure:
    """The architecture figure (object-oriented matplotlib, no pyplot state)."""
    figure = Figure(figsize=(18, 9.4), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, 18)
    axes.set_ylim(0, 9.4)
    axes.axis("off")

    def arrow(points: list[tuple[float, float]], label: str = "", both: bool = False) -> None:
        """A polyline whose last segment ends in an arrow head (both ends with ``both``)."""
        style = dict(color="#444444", linewidth=1.5)
        for start, end in pairwise(points[:-1]):
            axes.plot(*zip(start, end, strict=True), **style, solid_capstyle="round")
        head = "<|-|>" if both else "-|>"
        axes.add_patch(
            FancyArrowPatch(
                points[-2],
                points[-1],
                arrowstyle=head,
                mutation_scale=18,
                shrinkA=0,
                shrinkB=1,
                **style,
            )
        )
        if label:
            (x0, y0), (x1, y1) = points[len(points) // 2 - 1], points[len(points) // 2]
            axes.text(
                (x0 + x1) / 2,
                (y0 + y1) / 2 + 0.08,
                label,
                ha="center",
                va="bottom",
                fontsize=10,
                style="italic",
                color="#333333",
            )

    axes.add_patch(
        FancyBboxPatch(
            (3.0, 3.25),
            11.2,
            5.6,
            boxstyle="round,pad=0.02,rounding_size=0.2",
            facecolor="none",
            edgecolor="#7a9cc6",
            linestyle="--",
        )
    )
    axes.text(
        3.15,
        8.75,
        "Kedro project mixai_ml  (kedro run --pipelines=NAME)",
        color="#3d6aa2",
        fontsize=11,
        va="top",
    )
    for name, (x, y, width, colour, title, detail) in BOXES.items():
        height = _box_height(name)
        axes.add_patch(
            FancyBboxPatch(
                (x, y),
                width,
                height,
                boxstyle="round,pad=0.03,rounding_size=0.12",
                facecolor=COLOURS[colour],
                edgecolor="#555555",
            )
        )
        axes.text(
            x + width / 2,
            y + height - 0.15,
            title,
            ha="center",
            va="top",
            fontsize=13,
            fontweight="bold",
        )
        axes.text(
            x + width / 2,
            y + height - 0.6,
            detail,
            ha="center",
            va="top",
            fontsize=10,
            linespacing=1.4,
        )

    # the training chain
    arrow([_edge("audio", "right"), _edge("features", "left")])
    for source, target in (
        ("features", "training"),
        ("training", "evaluation"),
        ("evaluation", "export"),
        ("export", "bundle"),
    ):
        arrow([_edge(source, "right"), _edge(target, "left")])
    # the database feeds every pipeline through one line (SQL through the Kedro catalog)
    # (reading up into the training chain, left of centre; down into the others, right of it)
    bus_start = (BOXES["db"][0] + BOXES["db"][2], BUS)
    axes.plot(
        [bus_start[0], _centre("monitoring")[0] + 0.4], [BUS, BUS], color="#444444", linewidth=1.5
    )
    axes.text(
        bus_start[0] + 0.1,
        BUS + 0.06,
        "SQL through the Kedro catalog (read and write)",
        fontsize=10,
        style="italic",
        va="bottom",
    )
    for name in ("features", "training", "evaluation"):
        x = _centre(name)[0] - 0.4
        arrow([(x, BUS), (x, TOP)])
    for name in ("purge", "ab", "monitoring"):
        x = _centre(name)[0] + 0.4
        arrow([(x, BUS), (x, MIDDLE + HEIGHT)], both=name == "purge")
    # reports
    arrow([_edge("monitoring", "right"), _edge("reports", "left")])
    arrow([(BOXES["evaluation"][0] + 2.2, TOP), (BOXES["reports"][0] + 0.4, MIDDLE + HEIGHT)])
    ab_bottom, reports_bottom = _edge("ab", "bottom"), _edge("reports", "bottom")
    arrow([ab_bottom, (ab_bottom[0], 3.0), (reports_bottom[0], 3.0), reports_bottom])
    # deployment and the way back
    arrow([_edge("bundle", "bottom"), _edge("production", "top")], "deploy")
    production, database = _edge("production", "bottom"), _edge("db", "bottom")
    arrow(
        [production, (production[0], LANE), (database[0], LANE), database],
        "model_metrics: one row per answer (source, version, latency, prediction)",
    )

    axes.text(0.2, 9.25, "MIXAI ML: data flow", fontsize=17, fontweight="bold", va="top")
    legend = [
        ("app", "the MIXAI web app's data"),
        ("kedro", "Kedro pipeline"),
        ("artifact", "files the pipelines write"),
        ("production", "production runtime"),
    ]
    for index, (colour, text) in enumerate(legend):
        x = 3.2 + index * 3.6
        axes.add_patch(
            FancyBboxPatch(
                (x, 0.25),
                0.35,
                0.3,
                boxstyle="round,pad=0.02",
                facecolor=COLOURS[colour],
                edgecolor="#555555",
            )
        )
        axes.text(x + 0.5, 0.4, text, va="center", fontsize=10)
    return figure


def main(argv: list[str]) -> None:
    output = Path(argv[0]) if argv else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    draw().savefig(output, dpi=100, metadata={"Software": None})


if __name__ == "__main__":
    main(sys.argv[1:])
