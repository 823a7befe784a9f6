"""``mixai-infer``: features, mastering prediction and alignment from the command line.

::

    mixai-infer features AUDIO [--json]
    mixai-infer predict MIX --bundle DIR [--user-id U] [--job-id J] [--json]
    mixai-infer align VOCAL INSTRUMENTAL [--bundle DIR] [--user-id U] [--job-id J] [--json]

With ``--json`` one JSON object is printed (docs/data_contracts.md §8): for ``predict``
each task's answer (the mastering parameters under their names, ``preset``,
``preset_scores``) and under each task's name its ``source``, ``model_version``,
``variant``, ``experiment_id``, fallback ``reason``, and the input's ``ood_score`` and
``ood`` (:mod:`mixai_inference.ood`; ``MIXAI_OOD_POLICY`` overrides the bundle's policy);
for ``align`` ``offset_ms``,
``confidence`` and ``align_conf``; for ``features`` ``feature_schema_version`` and
``features`` (name → value). Without it, a
readable summary. ``align`` without ``--bundle`` answers the confidence from the rules.

Exit codes: 0 success; 2 unusable input (an :class:`~mixai_inference.errors.AudioError`
or bad arguments), the message on stderr without a traceback. A missing or broken
bundle is not an error: the answers come from the rules and say why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixai_inference._version import __version__
from mixai_inference.errors import AudioError

EXIT_INPUT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixai-infer", description="MIXAI inference: features, mastering, alignment."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    features = commands.add_parser("features", help="the feature vector of an audio file")
    features.add_argument("audio", type=Path, help="audio file (WAV, FLAC, OGG, MP3, AIFF)")

    predict = commands.add_parser("predict", help="mastering parameters and preset of a mix")
    predict.add_argument("mix", type=Path, help="the mix's audio file")
    predict.add_argument("--bundle", type=Path, required=True, help="model bundle folder")

    align = commands.add_parser("align", help="offset of a vocal against its instrumental")
    align.add_argument("vocal", type=Path)
    align.add_argument("instrumental", type=Path)
    align.add_argument("--bundle", type=Path, help="model bundle (else: rules confidence)")

    for command in (predict, align):
        command.add_argument("--user-id", help="routes the user to their A/B variant")
        command.add_argument("--job-id", help="recorded with the metrics")
    for command in (features, predict, align):
        command.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        output = _COMMANDS[args.command](args)
    except AudioError as exc:
        print(f"mixai-infer: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if args.json:
        print(json.dumps(output, ensure_ascii=False))
    else:
        print(_SUMMARIES[args.command](output))
    return 0


# --- commands ------------------------------------------------------------------------------


def _features(args: argparse.Namespace) -> dict[str, Any]:
    from mixai_inference.audio import load_audio
    from mixai_inference.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, extract_features

    audio, sr = load_audio(args.audio)
    values = extract_features(audio, sr).tolist()
    return {
        "feature_schema_version": FEATURE_SCHEMA_VERSION,
        "features": dict(zip(FEATURE_NAMES, values, strict=True)),
    }


def _predict(args: argparse.Namespace) -> dict[str, Any]:
    from mixai_inference.audio import load_audio
    from mixai_inference.features import extract_features
    from mixai_inference.predictor import Predictor

    audio, sr = load_audio(args.mix)
    features = extract_features(audio, sr)
    predictor = Predictor.from_bundle(args.bundle, preload=False)
    try:
        result = predictor.predict(features, user_id=args.user_id, job_id=args.job_id)
    finally:
        predictor.close()
    return result.to_dict()


def _align(args: argparse.Namespace) -> dict[str, Any]:
    from mixai_inference.audio import load_pair
    from mixai_inference.predictor import Predictor

    vocal, instrumental, sr = load_pair(args.vocal, args.instrumental)
    if args.bundle is None:
        predictor = Predictor.rules_only()
    else:
        predictor = Predictor.from_bundle(args.bundle, preload=False)
    try:
        result = predictor.align(vocal, instrumental, sr, user_id=args.user_id, job_id=args.job_id)
    finally:
        predictor.close()
    return result.to_dict()


_COMMANDS = {"features": _features, "predict": _predict, "align": _align}


# --- readable summaries ---------------------------------------------------------------------


def _provenance(answer: dict[str, Any]) -> str:
    text = answer["source"]
    if answer["model_version"]:
        text += f", model {answer['model_version']}"
    if answer["variant"]:
        text += f", variant {answer['variant']} of {answer['experiment_id']}"
    if answer["reason"]:
        text += f", because: {answer['reason']}"
    if answer["ood"]:
        text += f", input out of distribution (score {answer['ood_score']:.2f})"
    return text


def _features_summary(output: dict[str, Any]) -> str:
    values = output["features"]
    width = max(map(len, values))
    lines = [f"{len(values)} features (schema {output['feature_schema_version']})"]
    lines += [f"  {name:<{width}}  {value:.6g}" for name, value in values.items()]
    return "\n".join(lines)


def _predict_summary(output: dict[str, Any]) -> str:
    from mixai_inference.tasks import MASTER_PARAM_NAMES

    width = max(map(len, MASTER_PARAM_NAMES))
    lines = [f"mastering parameters ({_provenance(output['master_reg'])}):"]
    lines += [f"  {name:<{width}}  {output[name]:8.2f}" for name in MASTER_PARAM_NAMES]
    lines.append(f"preset: {output['preset']} ({_provenance(output['preset_cls'])})")
    ranked = sorted(output["preset_scores"].items(), key=lambda item: -item[1])
    lines += [f"  {name:<{width}}  {score:8.3f}" for name, score in ranked]
    return "\n".join(lines)


def _align_summary(output: dict[str, Any]) -> str:
    return (
        f"vocal offset: {output['offset_ms']:+.1f} ms\n"
        f"confidence:   {output['confidence']:.3f} ({_provenance(output['align_conf'])})"
    )


_SUMMARIES = {"features": _features_summary, "predict": _predict_summary, "align": _align_summary}


if __name__ == "__main__":
    sys.exit(main())
