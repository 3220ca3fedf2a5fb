"""Error texts for callers without the API key: hosts, ports and credentials taken out.

``/ready`` and ``/version`` are open (probes call them without a key), and their reasons quote
the errors of the registry and the prediction store, which name where those live
(``connection to server at "10.0.3.7", port 5432 failed``, ``HTTPConnectionPool(host=...,
port=...)``, a URL with its password). :func:`redact` keeps what the error says and replaces
where: a caller with the key (or any caller of a development service without one) reads the
full text; the log always has it.
"""

from __future__ import annotations

import re

HIDDEN = "<redacted>"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A URL, whatever its scheme: credentials, host, port and path all go.
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), rf"<url {HIDDEN}>"),
    # user:password@host, without a scheme.
    (re.compile(r"[^\s'\"@/:]+:[^\s'\"@/]+@[^\s'\"/,)]+"), HIDDEN),
    # key=value and key: value pairs that say where or who (urllib3, libpq, SQLAlchemy).
    (
        re.compile(
            r"\b(host(?:name|addr)?|port|user(?:name)?|password|passwd|dbname|database|server)"
            r"(\s*[=:]\s*)(?:'[^']*'|\"[^\"]*\"|[^\s,;)]+)",
            re.IGNORECASE,
        ),
        rf"\1\2{HIDDEN}",
    ),
    # libpq: connection to server at "10.0.3.7", port 5432 / on socket "/run/...".
    (
        re.compile(
            r"\b(server (?:at|on socket)|host name|host|user|role) \"[^\"]*\"", re.IGNORECASE
        ),
        rf'\1 "{HIDDEN}"',
    ),
    (re.compile(r"\b(port) \d+", re.IGNORECASE), rf"\1 {HIDDEN}"),
    # Bare addresses: IPv4 or bracketed IPv6, with a port if any; then name:port.
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), HIDDEN),
    (re.compile(r"\[[0-9a-fA-F:.]+\](?::\d+)?"), HIDDEN),
    (re.compile(r"\b(?=[a-zA-Z0-9.-]*[a-zA-Z])[a-zA-Z0-9][a-zA-Z0-9.-]*:\d{2,5}\b"), HIDDEN),
    (re.compile(r"\blocalhost\b", re.IGNORECASE), HIDDEN),
)


def redact(text: str | None) -> str | None:
    """``text`` without hosts, ports, URLs and credentials (None stays None)."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
