"""What a request may send, checked before anything runs; every refusal says what to send.

:class:`BadRequest` carries the HTTP status (400, 401, 404, 413, 415, 503, 504) and the
message the client gets as ``{"error": message}``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from mixai_inference._manifest_rules import is_finite_number
from mixai_inference.features import FEATURE_NAMES

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
"""``user_id``, ``job_id`` and ``X-Request-ID``: 1–64 of these characters (the columns'
width)."""

_NUMBERS: Final = frozenset((int, float))  # not bool: JSON's true is no feature value


class BadRequest(Exception):
    """A request the service refuses, with its status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _reject_constant(name: str) -> float:
    raise BadRequest(400, f"{name} is not a number JSON allows; send finite numbers only")


def parse_json(body: bytes) -> dict[str, Any]:
    """The request's JSON object.

    ``orjson`` parses on the hot path; a body it refuses is parsed again by the standard
    library, whose result or message is the one that counts (it says what is wrong).

    Raises:
        BadRequest: If the body is not a JSON object (NaN and Infinity are refused).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # also too deep, or 4,300+ digits
            raise BadRequest(
                400, f"the body is not valid JSON ({exc}); send a JSON object"
            ) from None
    if not isinstance(data, dict):
        raise BadRequest(400, f"send a JSON object, not {type(data).__name__}")
    return data


def optional_id(data: Mapping[str, Any], name: str) -> str | None:
    """``data[name]`` if given: an id of :data:`ID_PATTERN`.

    Raises:
        BadRequest: If it is not a string of that form.
    """
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise BadRequest(
            400,
            f"{name} must be a string of 1 to 64 letters, digits or . _ : @ - "
            f"(starting with a letter or digit), got {value!r}",
        )
    return value


def feature_vector(value: Any) -> np.ndarray:
    """The ``features`` of a request: ``len(FEATURE_NAMES)`` finite numbers, as float64.

    Raises:
        BadRequest: On a missing field, a wrong length, a non-number or a non-finite value.
    """
    width = len(FEATURE_NAMES)
    if not isinstance(value, list):
        raise BadRequest(
            400, f"features must be a list of {width} numbers (mixai_inference.FEATURE_NAMES order)"
        )
    if len(value) != width:
        raise BadRequest(400, f"features must have {width} numbers, got {len(value)}")
    if set(map(type, value)) <= _NUMBERS:  # checked in C: the hot path
        with contextlib.suppress(OverflowError):  # an int beyond float64
            row = np.array(value, dtype=np.float64)
            if np.isfinite(row).all():
                return row
    index, number = next((i, v) for i, v in enumerate(value) if not is_finite_number(v))
    shown = "an integer beyond float64" if type(number) is int else repr(number)
    raise BadRequest(400, f"features[{index}] must be a finite number, got {shown}")


def audio_path(root: Path | None, relative: Any, field: str) -> Path:
    """The file ``relative`` names under the audio root.

    Raises:
        BadRequest: 400 without an audio root, for a path that is absolute, not a string or
            resolves outside the root (``..``, a symlink); 404 when no file is there.
    """
    if root is None:
        raise BadRequest(
            400, f"{field} needs MIXAI_AUDIO_ROOT on the service; upload the file instead"
        )
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise BadRequest(400, f"{field} must be a path relative to the audio root")
    if Path(relative).is_absolute():
        raise BadRequest(400, f"{field} must be relative to the audio root, got an absolute path")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise BadRequest(400, f"{field} {relative!r} points outside the audio root")
    if not target.is_file():
        raise BadRequest(404, f"{field}: no audio file {relative!r} under the audio root")
    return target
