"""Error type and response envelope of the simulator's REST/WS front end."""
from __future__ import annotations

import time
from typing import Any

MISSING = -10011
WRONG_TYPE = -10012
BAD_VALUE = -10013
BAD_SIGNATURE = -10051
EXPIRED = -10052
RATE_LIMITED = -10053
UNKNOWN_KEY = -10054
DENIED = -10055
INTERNAL = -1  # [simulator] an unexpected failure inside the simulator (a bug; logged)

PATTERNS: dict[int, str] = {
    MISSING: "VALIDATE_PARAM_REQUIRED",
    WRONG_TYPE: "VALIDATE_PARAM_TYPE_ERROR",
    BAD_VALUE: "VALIDATE_PARAM_VALUE_ERROR",
    BAD_SIGNATURE: "SIGNATURE_ERROR",
    EXPIRED: "REQUEST_EXPIRED",
    RATE_LIMITED: "TOO_MANY_REQUESTS",
    UNKNOWN_KEY: "API_KEY_NOT_EXIST",
    DENIED: "PERMISSION_DENIED",
    INTERNAL: "INTERNAL_ERROR",
}


class ApiError(Exception):
    """A request the front end refuses; same shape as the core's ``SimError``."""

    def __init__(self, code: int, param: str | None = None, msg: str | None = None,
                 pattern: str | None = None) -> None:
        self.code = code
        self.param = param
        self.pattern = pattern or PATTERNS.get(code, "ERROR")
        self.msg = msg or self.pattern.lower().replace("_", " ")
        super().__init__(f"{code} {self.pattern} {param or ''}".strip())


def now_ms() -> int:
    """Wall clock in integer milliseconds."""
    return time.time_ns() // 1_000_000


def envelope(data: Any = None, *, code: int = 0, error: dict | None = None,
             msg: str | None = None) -> dict:
    """The documented response envelope."""
    return {"code": code, "data": data, "input": None, "traceId": "", "cost": 0,
            "error": error, "msg": msg, "time": now_ms()}


def error_envelope(err: Any) -> dict:
    """Envelope for an ``ApiError`` or a core ``SimError`` (duck-typed)."""
    code = int(getattr(err, "code", -1))
    pattern = getattr(err, "pattern", None) or PATTERNS.get(code, "ERROR")
    param = getattr(err, "param", None)
    msg = getattr(err, "msg", None) or pattern.lower().replace("_", " ")
    data = {"paramName": param} if param is not None else {}
    return envelope(None, code=code, error={"patternName": pattern, "data": data}, msg=msg)
