"""Credentials out of what is printed: URLs (and messages holding URLs) with passwords masked.

Every URL a command prints or logs goes through :func:`mask_credentials` (the store URLs, the
tracking URI, the Prefect API, S3 endpoints, a URL in an error message); a link a person opens
goes through :func:`without_credentials`. The service's open endpoints (``/ready``,
``/version``) go further for callers without the API key: :func:`redact` takes out where as
well (URLs, hosts, ports, users). The standard library only, so every layer may use it.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# user:password@ after a scheme; the password runs to the last @ of the URL's authority (one that
# was not percent-encoded may hold ':' or '@'; SQLAlchemy reads it so).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):(?P<pw>[^\s'\"/?#]*)@")
# Query parameters that carry secrets (?password=..., S3's X-Amz-Signature, ?token=...).
_SECRET_PARAM = re.compile(
    r"(?P<head>[?&;](?:[A-Za-z0-9_\-]*(?:password|passwd|pwd|secret|token|signature|credential|"
    r"api[_\-]?key|access[_\-]?key|sig))=)(?P<value>[^&;\s'\"#]*)",
    re.IGNORECASE,
)


def mask_credentials(text: object) -> str:
    """``text`` (a URL, or a message holding URLs) with each password and secret query value
    replaced by ``***``; the scheme, user, host, port and path stay, so it still says which
    store or server is meant.

    >>> mask_credentials("postgresql+psycopg://app:s3cret@db:5432/app")
    'postgresql+psycopg://app:***@db:5432/app'
    """
    out = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", str(text))
    return _SECRET_PARAM.sub(lambda m: f"{m['head']}{MASK}", out)


def without_credentials(url: str) -> str:
    """``url`` without its user and password: a link to open (the browser asks to log in)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return mask_credentials(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return mask_credentials(urlunsplit(parts._replace(netloc=netloc)))


class MaskCredentials(logging.Filter):
    """A logging filter (put on a handler) that masks credentials in each record's message and
    traceback, whichever library logged it (MLflow, Prefect, SQLAlchemy, botocore ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_credentials(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = mask_credentials(record.exc_text)
        return True


def mask_logging(logger: logging.Logger | None = None) -> None:
    """Put :class:`MaskCredentials` on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskCredentials) for f in handler.filters):
            handler.addFilter(MaskCredentials())


# The open endpoints' error texts: what an error says, without where.
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
