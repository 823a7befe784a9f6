"""``mixai-serve``, the inference service (CONTRACTS §9): ``pip install 'mixai-inference[serve]'``.

Modules: :mod:`~mixai_inference.serve.app` (HTTP), :mod:`~mixai_inference.serve.runtime`
(predictor, control refresh, hot reload), :mod:`~mixai_inference.serve.writer` (every answer
in the database), :mod:`~mixai_inference.serve.journal` (rows the database could not take),
:mod:`~mixai_inference.serve.store` (the tables), :mod:`~mixai_inference.serve.settings`,
:mod:`~mixai_inference.serve.telemetry` (``/metrics``), :mod:`~mixai_inference.serve.cli`.

This package alone may import the ``serve`` extra (Starlette, uvicorn, prometheus-client,
python-multipart, SQLAlchemy, psycopg); the rest of ``mixai_inference`` imports none of it.
Importing it imports nothing of the extra: the pipelines' ``ingest`` uses its journal and
store modules without the web stack.
"""
