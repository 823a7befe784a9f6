"""Project hooks."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

logger = logging.getLogger(__name__)


class TrainingJobHooks:
    """Marks ``failed`` the running ``training_jobs`` rows that a failing node held: a task's
    training and choice of candidate, and a trunk's multi-task network (which holds each of its
    tasks').

    Without this, a crash would leave the rows ``running`` forever.
    """

    @hook_impl
    def on_node_error(
        self, error: Exception, node: Node, catalog: Any, inputs: dict[str, Any], **kwargs: Any
    ) -> None:
        for name, started in inputs.items():
            task, _, dataset = name.rpartition(".")
            if not task or dataset != "training_job":
                continue
            if not isinstance(started, pd.DataFrame):
                continue
            running = started[started["status"] == "running"]  # a skipped run stays skipped
            if running.empty:
                continue
            failed = running.assign(
                status="failed",
                reason=f"{type(error).__name__} in {node.name}: {error}"[:2000],
                finished_at=pd.Timestamp.now(tz="UTC"),
            )
            catalog.save(f"{task}.training_job_finished", failed)
            logger.error("%s: %s failed; its run was recorded as failed", task, node.name)
