"""The out-of-distribution guard: the training reference, its calibration, the sketch, and the
predictor's policies (off / flag / fallback) with every answer scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_factory import (
    ALIGN_NAMES,
    FEATURE_NAMES,
    RULES,
    SCHEMA,
    build_bundle,
    feature_scales,
    master_bias,
    reference_for,
    training_rows,
    typical_features,
)

from mixai_inference.bundle import BundleError, read_manifest
from mixai_inference.metrics import MetricsSink, expand_entries
from mixai_inference.ood import (
    ENV_POLICY,
    SKETCH_BINS,
    InputReference,
    ReferenceError,
    decode_sketch,
    format_sketch,
)
from mixai_inference.predictor import Predictor
from mixai_inference.tasks import MASTER_PARAM_NAMES, MASTER_REG, PRESET_CLS

X = typical_features()
FAR = X + 25.0 * feature_scales()  # every feature 25 spreads away: nothing like training
REFERENCES = {task: reference_for(task) for task in (MASTER_REG, PRESET_CLS)}


def guarded_bundle(path: Path, **kwargs: Any) -> Path:
    return build_bundle(path, references=REFERENCES, **kwargs)


def open_bundle(path: Path, **kwargs: Any) -> Predictor:
    kwargs.setdefault("metrics_sink", MetricsSink())
    return Predictor.from_bundle(path, rules=RULES, feature_schema_version=SCHEMA, **kwargs)


@pytest.fixture(autouse=True)
def _no_policy_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_POLICY, raising=False)


# --- the reference ----------------------------------------------------------------------------


def test_the_threshold_holds_the_target_false_alarm_rate_on_new_rows() -> None:
    """Calibrated out of fold on 600 rows at 5 %: fresh rows of the same distribution are
    flagged at about 5 % (binomial sd on 4000 rows: 0.34 %, plus the calibration's own noise)."""
    reference = InputReference.from_bytes(reference_for(MASTER_REG, alpha=0.05))
    fresh = training_rows(4000, seed=7)
    rate = float(np.mean(reference.scores(fresh) > 1.0))
    assert 0.025 < rate < 0.085
    assert reference.info["out_of_fold_false_alarm_rate"] == pytest.approx(0.05, abs=0.01)


def test_far_and_decorrelated_inputs_score_above_one() -> None:
    reference = InputReference.from_bytes(REFERENCES[MASTER_REG])
    assert reference.scores(FAR[None, :])[0] > 5.0
    # each feature within its training range, but two correlated ones (0.9) pulled apart:
    # only the smallest principal directions see it
    broken = X.copy()
    broken[-2] += 2.5 * feature_scales()[-2]
    broken[-1] -= 2.5 * feature_scales()[-1]
    assert reference.scores(broken[None, :])[0] > 1.0
    assert reference.scores(X[None, :])[0] < 0.5


def test_the_reference_file_round_trips_and_bad_files_are_refused() -> None:
    content = REFERENCES[MASTER_REG]
    reference = InputReference.from_bytes(content)
    assert reference.to_bytes() == content
    assert reference.input_names == FEATURE_NAMES
    data = json.loads(content)
    with pytest.raises(ReferenceError, match="newer than this package"):
        InputReference.from_bytes(json.dumps({**data, "format_version": 99}).encode())
    with pytest.raises(ReferenceError, match="not an input reference"):
        InputReference.from_bytes(b'{"format": "pickle"}')
    with pytest.raises(ReferenceError, match="threshold must be positive"):
        InputReference.from_bytes(json.dumps({**data, "threshold": -1.0}).encode())
    with pytest.raises(ReferenceError, match="not JSON"):
        InputReference.from_bytes(b"\x80\x04K\x01.")  # a pickle


def test_the_serving_scorer_matches_the_reference_in_float32() -> None:
    reference = InputReference.from_bytes(REFERENCES[MASTER_REG])
    rows = training_rows(50, seed=3)
    scorer = reference.guard().scorer
    served = [scorer.score(row[None, :]) for row in rows]
    assert served == pytest.approx(reference.scores(rows), rel=1e-4)


def test_training_rows_fall_evenly_into_the_sketch_deciles() -> None:
    """The deciles split the training rows into ten equal shares per feature; a constant
    output (an atom) draws its digit evenly too (chi-square(9) at p = 1e-4: 33.7)."""
    guard = InputReference.from_bytes(REFERENCES[MASTER_REG]).guard()
    digits = np.array([guard.input_grid.bins(row) for row in training_rows(600, seed=0)])
    counts = np.stack([np.bincount(column, minlength=SKETCH_BINS) for column in digits.T])
    assert counts.min() >= 59
    assert counts.max() <= 61
    # column 0 off its atom (so the rows differ), the others on theirs: evenly spread digits
    rows = [np.r_[float(i), master_bias(0)[1:]] for i in range(2000)]
    on_atom = np.array([guard.output_grid.bins(row)[1:] for row in rows])
    counts = np.bincount(on_atom.ravel(), minlength=SKETCH_BINS)
    expected = on_atom.size / SKETCH_BINS
    assert ((counts - expected) ** 2 / expected).sum() < 33.7
    assert guard.output_grid.bins(rows[5]).tolist() == guard.output_grid.bins(rows[5]).tolist()
    # a batch is sketched row by row as alone, atoms included
    batch = guard.output_grid.bins(np.array(rows[:50]))
    assert batch.tolist() == [guard.output_grid.bins(row).tolist() for row in rows[:50]]
    with pytest.raises(ValueError, match="values per row"):
        guard.output_grid.bins(np.zeros(len(MASTER_PARAM_NAMES) + 1))
    given = guard.input_grid.digits(X)[0]
    sketch = format_sketch(given, guard.output_grid.digits(master_bias(0))[0])
    assert sketch.startswith(f"1:{given}|")
    assert format_sketch(given, None) == f"1:{given}|"
    decoded = decode_sketch(sketch)
    assert decoded is not None
    assert len(decoded[0]) == len(FEATURE_NAMES)
    assert len(decoded[1]) == len(MASTER_PARAM_NAMES)
    assert decode_sketch("2:123|4") is None


# --- the predictor ----------------------------------------------------------------------------


def test_every_answer_reports_its_score_and_the_far_input_is_flagged(tmp_path: Path) -> None:
    predictor = open_bundle(guarded_bundle(tmp_path / "bundle"))
    near = predictor.predict(X).to_dict()
    far = predictor.predict(FAR).to_dict()
    for task in (MASTER_REG, PRESET_CLS):
        assert isinstance(near[task]["ood_score"], float)
        assert near[task]["ood"] is False
        assert far[task]["ood"] is True
        assert far[task]["source"] == "ml"  # default policy: flag
    assert [far[name] for name in MASTER_PARAM_NAMES] == pytest.approx(master_bias(0))


def test_fallback_answers_a_far_input_from_the_rules(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle", ood_policy={MASTER_REG: "fallback"})
    predictor = open_bundle(bundle)
    far = predictor.predict(FAR).to_dict()
    assert far[MASTER_REG]["source"] == "rules"
    assert far[MASTER_REG]["reason"] == "out_of_distribution"
    assert far[MASTER_REG]["ood"] is True
    assert [far[name] for name in MASTER_PARAM_NAMES] == pytest.approx(
        RULES.master_params(FAR[None, :])[0]
    )
    assert far[PRESET_CLS]["source"] == "ml"  # its policy is the default, flag
    near = predictor.predict(X).to_dict()
    assert near[MASTER_REG]["source"] == "ml"


def test_policy_off_scores_nothing_and_run_time_control_changes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = open_bundle(guarded_bundle(tmp_path / "bundle"), ood_policy="off")
    assert predictor.predict(FAR).to_dict()[MASTER_REG]["ood_score"] is None

    predictor.guards.set_policy(MASTER_REG, "fallback")  # the service's control swap
    answer = predictor.predict(FAR).to_dict()
    assert answer[MASTER_REG]["reason"] == "out_of_distribution"
    assert answer[PRESET_CLS]["ood_score"] is None
    with pytest.raises(ValueError, match="must be one of"):
        predictor.guards.set_policy(MASTER_REG, "ignore")

    monkeypatch.setenv(ENV_POLICY, "flag")  # the operator's override wins
    predictor.guards.set_policy(MASTER_REG, "fallback")
    assert predictor.guards.policies[MASTER_REG] == "flag"
    assert predictor.predict(FAR).to_dict()[MASTER_REG]["source"] == "ml"


def test_the_records_carry_score_verdict_and_sketch(tmp_path: Path) -> None:
    sink = MetricsSink()
    predictor = open_bundle(guarded_bundle(tmp_path / "bundle"), metrics_sink=sink)
    predictor.predict(FAR, user_id="u1", job_id="j1")
    master, preset = sink.records()
    assert master.ood is True
    assert master.ood_score is not None
    assert master.ood_score > 1.0
    decoded = decode_sketch(str(master.input_sketch))
    assert decoded is not None
    assert decoded[0].tolist() == [SKETCH_BINS - 1] * len(FEATURE_NAMES)  # above every decile
    assert len(decoded[1]) == len(MASTER_PARAM_NAMES)
    assert preset.input_sketch is not None
    for record in (master, preset):  # digits computed once per call for equal grids, as alone
        grid = predictor.guards.of(record.task, record.model_version).input_grid
        expected = grid.digits(np.asarray(FAR, dtype=np.float32))[0]
        assert str(record.input_sketch).split(":")[1].split("|")[0] == expected
    predictor.align_from_features(10.0, np.zeros(len(ALIGN_NAMES), dtype=np.float32))
    align = sink.records()[-1]
    assert (align.ood_score, align.ood, align.input_sketch) == (None, None, None)  # no reference
    row = master.to_row()
    assert row["ood"] is True
    assert row["input_sketch"] == master.input_sketch


def test_a_batch_of_calls_is_recorded_as_each_call_alone(tmp_path: Path) -> None:
    """The writer builds a batch's records at once (one comparison per grid): the same
    records, sketches included, as building each call's alone."""
    sink = MetricsSink()
    predictor = open_bundle(guarded_bundle(tmp_path / "bundle"), metrics_sink=sink)
    for i, features in enumerate([X, FAR, X * 0.9, X + feature_scales()]):
        predictor.predict(features, user_id=f"u{i}", request_id=f"r{i}")
    predictor.align_from_features(10.0, np.zeros(len(ALIGN_NAMES), dtype=np.float32))
    entries = list(sink._ring)
    alone = [record for entry in entries for record in expand_entries([entry])]
    assert expand_entries(entries) == alone
    assert len({record.input_sketch for record in alone if record.task == MASTER_REG}) == 4


def test_non_finite_features_are_not_scored(tmp_path: Path) -> None:
    predictor = open_bundle(guarded_bundle(tmp_path / "bundle"))
    bad = X.copy()
    bad[0] = np.nan
    answer = predictor.predict(bad).to_dict()[MASTER_REG]
    assert (answer["reason"], answer["ood_score"], answer["ood"]) == (
        "invalid_features",
        None,
        False,
    )


def test_a_tampered_reference_sends_its_model_to_the_rules(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle")
    manifest = read_manifest(bundle)
    reference = manifest.tasks[MASTER_REG].models["v0"].reference
    assert reference is not None
    (bundle / reference).write_bytes(b"{}")
    answer = open_bundle(bundle).predict(X).to_dict()
    assert (answer[MASTER_REG]["source"], answer[MASTER_REG]["reason"]) == (
        "rules",
        "sha256_mismatch",
    )
    assert answer[PRESET_CLS]["source"] == "ml"


def test_the_manifest_covers_the_reference_and_checks_the_policy(tmp_path: Path) -> None:
    bundle = guarded_bundle(tmp_path / "bundle", ood_policy={MASTER_REG: "fallback"})
    manifest = read_manifest(bundle)
    entry = manifest.tasks[MASTER_REG]
    assert entry.ood_policy == "fallback"
    assert set(entry.models["v0"].files) == {"master_reg-v0.onnx", "master_reg-v0.reference.json"}
    raw = json.loads((bundle / "manifest.json").read_text())
    raw["tasks"][MASTER_REG]["ood_policy"] = "ignore"
    (bundle / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="ood_policy must be one of"):
        read_manifest(bundle)
