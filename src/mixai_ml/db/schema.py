"""The application database: every table, in one place (docs/data_contracts.md §2, §5 and §6).

This module is the single source of truth for table shapes. Migrations
(:mod:`mixai_ml.db.migrations`) create and alter tables from it; datasets and
queries refer to its names. Types are SQL-standard so that the same schema runs
on SQLite and PostgreSQL. Timestamps are stored as timezone-aware UTC; JSON is
stored as text.

A column, index or check added to a table that already exists carries
``info=added_in(N)``, N being the migration that adds it (see docs/database.md).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from mixai_inference.alignment import ALIGNMENT_FEATURE_NAMES
from mixai_inference.features import FEATURE_NAMES
from mixai_inference.ood import POLICIES as OOD_POLICIES
from mixai_inference.tasks import flag_names, task_names
from mixai_ml.db import ab_store_tables  # noqa: F401  (its tables are part of the schema)
from mixai_ml.db.base import added_in, metadata, one_of, utc

TASKS = task_names()
EXCLUSION_REASONS = ("withdrawal", "quality", "legal_hold", "manual")
MODEL_STATUSES = ("candidate", "active", "shadow", "retired")
TRAINING_STATUSES = ("queued", "running", "succeeded", "failed", "skipped")
PREDICTION_SOURCES = ("ml", "rules")
EXPERIMENT_STATUSES = ("draft", "running", "stopped")
RUN_KINDS = ("train", "purge")
RUN_STATUSES = ("queued", "running", "succeeded", "failed")
LIVE_RUN_STATUSES = ("queued", "running")
PURGE_STATUSES = ("running", "succeeded", "failed")


schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", utc(), nullable=False),
)

# --- tables the MIXAI web app writes --------------------------------------------------------

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("created_at", utc(), nullable=False),
    Column("vocal_path", Text, nullable=False),
    Column("inst_path", Text, nullable=False),
    Column("trimmed_inst_path", Text, nullable=True),
    Column("mix_path", Text, nullable=False),
)

ml_consent = Table(
    "ml_consent",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("consented", Boolean, nullable=False),
    Column("updated_at", utc(), nullable=False),
    Column("withdrawn_at", utc(), nullable=True),
)

ml_exclusions = Table(
    "ml_exclusions",
    metadata,
    Column("exclusion_id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=True, index=True),
    Column("job_id", String(64), nullable=True, index=True),
    Column("reason", String(32), nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", utc(), nullable=False),
    one_of("reason", EXCLUSION_REASONS),
    CheckConstraint("user_id IS NOT NULL OR job_id IS NOT NULL", name="ck_exclusion_target"),
)

labels = Table(
    "labels",
    metadata,
    Column("job_id", String(64), nullable=False),
    Column("task", String(32), nullable=False),
    Column("label", Text, nullable=False),
    Column("created_at", utc(), nullable=False),
    PrimaryKeyConstraint("job_id", "task", name="pk_labels"),
    one_of("task", TASKS),
)

ab_test_assignments = Table(
    "ab_test_assignments",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("assigned_at", utc(), nullable=False),
    PrimaryKeyConstraint("experiment_id", "user_id", name="pk_ab_test_assignments"),
    # new assignments by time, for the daily counts of ab_analysis
    Index(
        "ix_ab_test_assignments_assigned",
        "assigned_at",
        "experiment_id",
        "variant",
        info=added_in(20),
    ),
)

ab_test_metrics = Table(
    "ab_test_metrics",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("recorded_at", utc(), nullable=False),
    # Covering: the per-user GROUP BY of ab_analysis reads the index alone (docs/benchmarks.md).
    Index(
        "ix_ab_test_metrics_covering",
        "experiment_id",
        "metric",
        "user_id",
        "value",
        "recorded_at",
        info=added_in(5),
    ),
    # ab_analysis finds the users with new rows by time (incremental statistics)
    Index(
        "ix_ab_test_metrics_recorded",
        "recorded_at",
        "experiment_id",
        "metric",
        "user_id",
        info=added_in(20),
    ),
)

model_metrics = Table(
    "model_metrics",
    metadata,
    Column("recorded_at", utc(), nullable=False, index=True),
    Column("task", String(32), nullable=False),
    Column("model_version", String(64), nullable=True),
    Column("variant", String(64), nullable=True),
    Column("source", String(8), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("user_id", String(64), nullable=True),
    Column("job_id", String(64), nullable=True),
    Column("prediction", Text, nullable=True),
    Column("request_id", String(64), nullable=True, info=added_in(7)),
    Column("experiment_id", String(64), nullable=True, info=added_in(7)),
    # the out-of-distribution guard (mixai_inference.ood): score, verdict, decile sketch
    Column("ood_score", Float, nullable=True, info=added_in(9)),
    Column("ood", Boolean, nullable=True, info=added_in(9)),
    Column("input_sketch", Text, nullable=True, info=added_in(9)),
    one_of("source", PREDICTION_SOURCES),
    # One row per answer of a task to a request (idempotent ingestion); NULLs never collide.
    Index("ux_model_metrics_task_request_id", "task", "request_id", unique=True, info=added_in(7)),
)

# --- tables the ML side writes --------------------------------------------------------------

FEATURE_COLUMNS: tuple[str, ...] = FEATURE_NAMES + ALIGNMENT_FEATURE_NAMES
"""Value columns of ``features_store``: track features of the mix, then alignment features."""

features_store = Table(
    "features_store",
    metadata,
    Column("job_id", String(64), nullable=False),
    Column("schema_version", String(16), nullable=False),
    Column("extracted_at", utc(), nullable=False),
    *(Column(name, Float, nullable=True) for name in FEATURE_COLUMNS),
    PrimaryKeyConstraint("job_id", "schema_version", name="pk_features_store"),
)

feature_failures = Table(
    "feature_failures",
    metadata,
    Column("job_id", String(64), nullable=False),
    Column("schema_version", String(16), nullable=False),
    Column("failed_at", utc(), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("error_class", String(128), nullable=False),
    Column("message", Text, nullable=False),
    PrimaryKeyConstraint("job_id", "schema_version", "stage", name="pk_feature_failures"),
)

model_registry = Table(
    "model_registry",
    metadata,
    Column("model_id", String(128), primary_key=True),
    Column("task", String(32), nullable=False),
    Column("version", String(64), nullable=False),
    Column("uri", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("feature_schema_version", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rollout_pct", Float, nullable=False, default=0.0),
    Column("metrics", Text, nullable=True),
    Column("created_at", utc(), nullable=False),
    Column("promoted_at", utc(), nullable=True),
    one_of("status", MODEL_STATUSES),
    one_of("task", TASKS),
    CheckConstraint("rollout_pct >= 0 AND rollout_pct <= 100", name="ck_rollout_pct_range"),
)

training_jobs = Table(
    "training_jobs",
    metadata,
    Column("training_job_id", String(64), primary_key=True),
    Column("task", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("n_samples", Integer, nullable=True),
    Column("model_version", String(64), nullable=True),
    Column("started_at", utc(), nullable=True),
    Column("finished_at", utc(), nullable=True),
    # JSON: rows dropped per governance reason, kept with the run
    Column("governance", Text, nullable=True),
    # the pipeline_runs row of the console or trigger run that queued it (NULL: a plain kedro run)
    Column("run_id", String(64), nullable=True, info=added_in(11)),
    one_of("status", TRAINING_STATUSES),
    one_of("task", TASKS),
    Index("ix_training_jobs_run_id", "run_id", info=added_in(11)),
)

ab_test_results = Table(
    "ab_test_results",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("control_variant", String(64), nullable=False),
    Column("metric_type", String(16), nullable=True),
    Column("role", String(16), nullable=True),
    Column("n_control", Integer, nullable=False),
    Column("n_variant", Integer, nullable=False),
    Column("mean_control", Float, nullable=True),
    Column("mean_variant", Float, nullable=True),
    Column("abs_effect", Float, nullable=True),
    Column("abs_ci_low", Float, nullable=True),
    Column("abs_ci_high", Float, nullable=True),
    Column("rel_effect", Float, nullable=True),
    Column("rel_ci_low", Float, nullable=True),
    Column("rel_ci_high", Float, nullable=True),
    Column("p_value", Float, nullable=True),
    Column("p_value_adjusted", Float, nullable=True),
    Column("significant", Boolean, nullable=True),
    Column("cuped", Boolean, nullable=True),
    Column("variance_reduction", Float, nullable=True),
    Column("noninferiority_margin", Float, nullable=True),
    Column("noninferiority_p_value", Float, nullable=True),
    Column("seq_ci_low", Float, nullable=True),
    Column("seq_ci_high", Float, nullable=True),
    Column("seq_p_value", Float, nullable=True),
    Column("seq_significant", Boolean, nullable=True),
    Column("power", Float, nullable=True),
    Column("mde", Float, nullable=True),
    Column("required_n_per_variant", Float, nullable=True),
    Column("srm_p_value", Float, nullable=True),
    Column("decision", String(32), nullable=True),
    # metric types, caps, the sequential SRM check and the corrections in words
    Column("statistic", String(16), nullable=True, info=added_in(21)),
    Column("cap", Float, nullable=True, info=added_in(21)),
    Column("capped_share", Float, nullable=True, info=added_in(21)),
    Column("srm_seq_p_value", Float, nullable=True, info=added_in(21)),
    Column("family_size", Integer, nullable=True, info=added_in(21)),
    Column("corrections", Text, nullable=True, info=added_in(21)),
    Column("analysed_at", utc(), nullable=False),
    PrimaryKeyConstraint("experiment_id", "metric", "variant", name="pk_ab_test_results"),
)

purge_audit = Table(
    "purge_audit",
    metadata,
    Column("purge_id", String(64), nullable=False),
    Column("purged_at", utc(), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("table_name", String(64), nullable=False),
    Column("rows_deleted", Integer, nullable=False),
    PrimaryKeyConstraint("purge_id", "user_id", "table_name", name="pk_purge_audit"),
)

# One row per run of the purge: when it ran and how it ended (docs/privacy.md).
purge_runs = Table(
    "purge_runs",
    metadata,
    Column("purge_id", String(64), primary_key=True),
    Column("started_at", utc(), nullable=False, index=True),
    Column("finished_at", utc(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("withdrawals_completed", Integer, nullable=True),
    Column("rows_deleted", Integer, nullable=True),
    Column("error", Text, nullable=True),
    one_of("status", PURGE_STATUSES),
)

# Each withdrawal the purge completed (every place cleaned): the 24-hour promise, measured.
purge_withdrawals = Table(
    "purge_withdrawals",
    metadata,
    Column("user_id", String(64), nullable=False),
    Column("withdrawn_at", utc(), nullable=False),
    Column("purged_at", utc(), nullable=False),
    Column("purge_id", String(64), nullable=False),
    PrimaryKeyConstraint("user_id", "withdrawn_at", name="pk_purge_withdrawals"),
)

# Assignments the purge deleted, counted without user ids, so that the sample-ratio check
# still sees the experiment's original allocation (docs/ab_testing.md).
ab_purged_assignments = Table(
    "ab_purged_assignments",
    metadata,
    Column("experiment_id", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("assigned_day", String(10), nullable=False),  # UTC date of assigned_at, YYYY-MM-DD
    Column("n_purged", Integer, nullable=False),
    PrimaryKeyConstraint(
        "experiment_id", "variant", "assigned_day", name="pk_ab_purged_assignments"
    ),
)

# --- run-time control (docs/data_contracts.md §5) -----------------------------------------------

ml_feature_flags = Table(
    "ml_feature_flags",
    metadata,
    Column("flag", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", utc(), nullable=False),
    Column("updated_by", String(128), nullable=True),
    one_of("flag", flag_names()),
)

ab_experiments = Table(
    "ab_experiments",
    metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column("task", String(32), nullable=False),
    # JSON: variant → "active", "candidate", "rules" or a model version
    Column("variants", Text, nullable=False),
    # JSON: variant → relative weight (as mixai_inference.assign_variant takes them)
    Column("weights", Text, nullable=False),
    Column("coverage", Float, nullable=False, default=1.0),
    Column("status", String(16), nullable=False),
    Column("started_at", utc(), nullable=True),
    Column("stopped_at", utc(), nullable=True),
    one_of("task", TASKS),
    one_of("status", EXPERIMENT_STATUSES),
    CheckConstraint("coverage >= 0 AND coverage <= 1", name="ck_coverage_range"),
)

# One row per task whose serving the database overrides; a task without a row (or a null
# setting) serves as its bundle says.
ml_task_settings = Table(
    "ml_task_settings",
    metadata,
    Column("task", String(32), primary_key=True),
    Column("ood_policy", String(16), nullable=True),
    Column("updated_at", utc(), nullable=False),
    Column("updated_by", String(128), nullable=True),
    one_of("task", TASKS),
    one_of("ood_policy", OOD_POLICIES),
)

admin_audit_log = Table(
    "admin_audit_log",
    metadata,
    Column("audit_id", String(64), primary_key=True),
    Column("at", utc(), nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=True),
    # JSON: the changed object before and after (NULL when created or deleted)
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
)


# A run the console or a trigger started in its own process (docs/admin.md): at most one live
# (queued or running) run per kind; a runner that stops sending heartbeats is marked failed.
_LIVE_RUN = text("status IN ('queued', 'running')")

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    # train: the one task trained, NULL for every task
    Column("task", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", utc(), nullable=False, index=True),
    Column("started_at", utc(), nullable=True),
    Column("finished_at", utc(), nullable=True),
    # the runner process: where it runs and when it last said it is alive
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("heartbeat_at", utc(), nullable=True),
    Column("log_file", Text, nullable=True),
    one_of("kind", RUN_KINDS),
    one_of("status", RUN_STATUSES),
    Index(
        "ux_pipeline_runs_live_kind",
        "kind",
        unique=True,
        sqlite_where=_LIVE_RUN,
        postgresql_where=_LIVE_RUN,
    ),
)
