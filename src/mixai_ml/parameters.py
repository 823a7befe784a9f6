"""The key check shared by the readers of ``conf/base/parameters_*.yml``.

A reader that ignored keys it did not know would let a typo leave a default in force without a
word, so every reader checks each section it reads with :func:`settings_section`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def settings_section(
    raw: Any,
    where: str,
    *,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
    noun: str = "setting",
) -> Mapping[str, Any]:
    """``raw``, the section of the parameters at ``where``, checked against its keys.

    Args:
        raw: The section as loaded from YAML (``None`` counts as an empty section).
        where: Its dotted place in the parameters, for the messages (``monitoring.drift``).
        required: Keys the section must set.
        optional: Keys it may set.
        noun: What a key names, for the messages (``metric`` in a section of rules).

    Returns:
        ``raw`` as a mapping.

    Raises:
        ValueError: ``raw`` is not a mapping, misses a required key, or has a key outside
            ``required`` and ``optional``; the message names the section, the keys and the
            known keys.
    """
    section = {} if raw is None else raw
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} must be a mapping of settings, got {raw!r}")
    required = set(required)
    known = required | set(optional)
    if unexpected := sorted(map(str, set(section) - known)):
        raise ValueError(
            f"{where}: unknown {noun}(s) {', '.join(unexpected)}; known: "
            + ", ".join(sorted(known))
        )
    if missing := sorted(required - set(section)):
        raise ValueError(f"{where}: missing {noun}(s) {', '.join(missing)}")
    return section
