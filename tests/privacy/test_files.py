"""File places: journals rewritten without losing what a writer appends meanwhile, text masked
in place under a process that keeps appending, and the catalog's list of places."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from kedro.io.core import DatasetError

from mixai_inference.serve.journal import Journal, claimed
from mixai_inference.tasks import task_names
from mixai_ml.datasets import PersonalFilesDataset
from mixai_ml.privacy import FileBusy, PurgeTargets
from mixai_ml.privacy.files import JsonLines, MaskedText, ParquetRows, _lines_to_remove

T0 = pd.Timestamp("2026-06-01", tz="UTC")


def targets() -> PurgeTargets:
    """U7 withdrew (jobs J70, J71; J71 under a legal hold); U1 and U77 consent."""
    return PurgeTargets.from_tables(
        jobs=pd.DataFrame(
            {"job_id": ["J10", "J70", "J71", "J770"], "user_id": ["U1", "U7", "U7", "U77"]}
        ),
        consent=pd.DataFrame(
            {
                "user_id": ["U1", "U7", "U77"],
                "consented": [True, False, True],
                "updated_at": T0,
                "withdrawn_at": [pd.NaT, T0, pd.NaT],
            }
        ),
        exclusions=pd.DataFrame({"user_id": [None], "job_id": ["J71"], "reason": ["legal_hold"]}),
    )


def line(user: str, job: str | None, n: int = 0) -> str:
    return json.dumps({"user_id": user, "job_id": job, "n": n}) + "\n"


def test_journal_lines_appended_during_the_rewrite_are_kept_or_purged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that does not lock appends between the purge's read and its rename."""
    journal = tmp_path / "journal.jsonl"
    journal.write_text(line("U1", "J10") + line("U7", "J70") + line("U7", "J71"))
    appended = False

    def decide_and_append(lines: list[bytes], *args: object) -> list[str | None]:
        nonlocal appended
        if not appended:  # the service appends while the purge works
            appended = True
            with open(journal, "a") as writer:
                writer.write(line("U7", None, 1) + line("U77", "J770", 2) + '{"user_id": "U1"')
        return _lines_to_remove(lines, *args)  # type: ignore[arg-type]

    monkeypatch.setattr("mixai_ml.privacy.files._lines_to_remove", decide_and_append)
    removed = JsonLines("journal", (journal,)).purge(targets())

    assert journal.read_text() == (
        line("U1", "J10") + line("U7", "J71") + line("U77", "J770", 2) + '{"user_id": "U1"'
    )
    assert removed.to_dict() == {"U7": 2}


def test_a_journal_without_targets_is_left_alone(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text(line("U1", "J10") + line("U77", "J770"))
    before = journal.stat()
    assert JsonLines("journal", (journal,)).purge(targets()).empty
    assert journal.stat().st_ino == before.st_ino  # not even rewritten


def test_the_service_journal_is_cleaned_once_the_service_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mixai-serve's own journal: rows nested in its lines (``{"table": …, "row": {…}}``), and
    the ``flock`` it holds on the file while appending. The purge does not wait for ever: it
    fails the file while it holds the targets' lines, and cleans it once the service sealed
    it; what ``ingest`` then loads has no withdrawn user."""
    monkeypatch.setattr("mixai_ml.privacy.files.LOCK_WAIT_S", 0.3)
    rows = [("model_metrics", "U7", "J70"), ("ab_test_assignments", "U7", None)]
    rows += [("model_metrics", "U7", "J71"), ("model_metrics", "U1", "J10")]
    journal = Journal(tmp_path)
    journal.append((table, {"user_id": user, "job_id": job}) for table, user, job in rows)
    assert journal.path is not None
    path = journal.path
    with pytest.raises(FileBusy, match=r"\.jsonl is locked"):
        JsonLines("journals", (path,)).purge(targets())

    journal.seal()
    removed = JsonLines("journals", (path,)).purge(targets())
    assert removed.to_dict() == {"U7": 2}
    with claimed(path) as loaded:
        assert loaded is not None
        assert [(table, row["job_id"]) for table, row in loaded] == [
            ("model_metrics", "J71"),
            ("model_metrics", "J10"),
        ]


def test_a_locked_journal_without_targets_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mixai_ml.privacy.files.LOCK_WAIT_S", 0.3)
    clean = tmp_path / "clean.jsonl"
    clean.write_text(line("U1", "J10"))
    with open(clean, "ab") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)
        assert JsonLines("journals", (clean,)).purge(targets()).empty
    assert clean.read_text() == line("U1", "J10")


def test_text_is_masked_in_place_under_an_appending_process(tmp_path: Path) -> None:
    log = tmp_path / "kedro_info.log"
    with open(log, "a", encoding="utf-8") as handler:  # like logging's FileHandler
        handler.write("job J70 of U7 failed; J710 and U77 are other ids; J71 is held\n")
        handler.flush()
        removed = MaskedText("log", (log,)).purge(targets())
        handler.write("next line\n")
    assert log.read_text() == (
        "job ### of ## failed; J710 and U77 are other ids; J71 is held\nnext line\n"
    )
    assert removed.to_dict() == {"U7": 2}


def test_parquet_rows_go_by_job_or_by_user(tmp_path: Path) -> None:
    path = tmp_path / "predictions.parquet"
    pd.DataFrame(
        {"job_id": ["J10", "J70", "J71", None], "user_id": ["U1", "U7", "U7", "U7"]}
    ).to_parquet(path)
    removed = ParquetRows("predictions", (path,)).purge(targets())
    assert pd.read_parquet(path)["job_id"].tolist() == ["J10", "J71"]
    assert removed.to_dict() == {"U7": 2}


def test_the_dataset_lists_the_files_of_each_place(tmp_path: Path) -> None:
    for task in task_names()[:2]:
        (tmp_path / task).mkdir()
        (tmp_path / task / "model_input.parquet").write_bytes(b"")
    journals = tmp_path / "journals" / "2026"
    journals.mkdir(parents=True)
    (journals / "a.jsonl").write_text("")
    (journals / "a.jsonl.gz").write_text("")
    (journals / "b.jsonl.rejected").write_text("")
    dataset = PersonalFilesDataset(
        places={
            "model_input": {
                "kind": "parquet",
                "filepath": f"{tmp_path}/{{task}}/model_input.parquet",
            },
            "journals": {
                "kind": "jsonl",
                "path": str(tmp_path / "journals"),
                "suffixes": [".jsonl", ".jsonl.rejected"],
            },
            "missing": {"kind": "text", "path": str(tmp_path / "nowhere")},
        }
    )
    loaded = {place.name: place for place in dataset.load()}
    assert isinstance(loaded["model_input"], ParquetRows)
    assert [path.parent.name for path in loaded["model_input"].paths] == sorted(task_names()[:2])
    assert loaded["journals"].paths == (journals / "a.jsonl", journals / "b.jsonl.rejected")
    assert loaded["missing"].paths == ()
    with pytest.raises(DatasetError, match="kind must be one of"):
        PersonalFilesDataset(places={"x": {"kind": "csv", "filepath": "x.csv"}})
    with pytest.raises(DatasetError, match="suffixes is a list"):
        PersonalFilesDataset(places={"x": {"kind": "jsonl", "path": "j", "suffixes": ".jsonl"}})
    with pytest.raises(DatasetError, match="either a filepath or a path"):
        PersonalFilesDataset(places={"x": {"kind": "text"}})


@pytest.mark.parametrize(
    "module", ["mixai_ml.privacy", "mixai_ml.pipelines.purge", "mixai_ml.datasets"]
)
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """``kedro airflow create`` imports the pipelines before the datasets: no import cycle."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
