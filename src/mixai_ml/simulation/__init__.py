"""The synthetic MIXAI world: styles, procedural audio, users, jobs, labels and online logs.

Plain modules without Kedro: :mod:`styles` (the six presets as musical styles),
:mod:`synth` (vectorised synthesis of vocal and instrumental stems), :mod:`recording`
(what uploads and amateur mixes do to them), :mod:`world` (users, consent, jobs, labels,
ground truth) and :mod:`online` (``model_metrics`` and A/B logs). The ``demo_data``
pipeline wires them to the catalog.
"""
