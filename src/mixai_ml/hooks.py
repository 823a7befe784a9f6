"""Project hooks."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

logger = logging.getLogger(__name__)


class TrainingJobHooks:
    """Marks a task's ``training_jobs`` row ``failed`` when its training node raises.

    Without this, a crash would leave the row ``running`` forever.
    """

    @hook_impl
    def on_node_error(
        self, error: Exception, node: Node, catalog: Any, inputs: dict[str, Any], **kwargs: Any
    ) -> None:
        if node.namespace is None or node.name != f"{node.namespace}.train":
            return
        started = inputs.get(f"{node.namespace}.training_job")
        if not isinstance(started, pd.DataFrame) or started.empty:
            return
        failed = started.assign(
            status="failed",
            reason=f"{type(error).__name__}: {error}"[:2000],
            finished_at=pd.Timestamp.now(tz="UTC"),
        )
        catalog.save(f"{node.namespace}.training_job_finished", failed)
        logger.error("%s: training failed and was recorded as failed", node.namespace)
