"""Credentials out of text: what an agent sees and what the log keeps (no botocore import, so any module may use it).

AWS error messages echo what they refused: an AccessDenied from S3 can quote the presigned URL, Bedrock's
quotes the caller's access key id, a botocore debug line holds the Authorization header. `scrub` replaces
access key ids, secret keys, session tokens, SigV4 credentials and signatures, and whole presigned URLs;
other URLs lose their query strings. `ScrubbingFilter` does the same to log records; install it on the
handlers once logging is configured (`install_log_scrubber`).
"""

from __future__ import annotations

import logging
import re

_MAX_MESSAGE = 600
_PRESIGNED_MARKERS = re.compile(
    r"(?i)(x-amz-signature|x-amz-credential|x-amz-security-token|awsaccesskeyid|[?&]signature=)"
)
_URL = re.compile(r"""(?i)\b(?:https?|s3)://[^\s"'<>]+""")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # SigV4 Authorization header pieces and query parameters
    (re.compile(r"(?i)(Credential=)[^\s,&\"']+"), r"\1<redacted>"),
    (re.compile(r"(?i)(Signature=)[^\s,&\"']+"), r"\1<redacted>"),
    (re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^\s,&\"']+"), r"\1<redacted>"),
    # key=value / "Key": "value" forms of secrets and session tokens
    (
        re.compile(
            r"""(?i)((?:aws_)?(?:secret_?access_?key|session_?token|security_?token)["']?\s*[:=]\s*["']?)"""
            r"""[^\s"',;&]+"""
        ),
        r"\1<redacted>",
    ),
    # access key ids (long-term AKIA, temporary ASIA, and the other documented unique-id prefixes)
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[0-9A-Z]{16}\b"), "<access-key-id>"),
    # a bare 40-character secret access key (mixed case and a digit or / +, so hex digests are kept)
    (
        re.compile(
            r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        "<secret>",
    ),
    # long base64 runs: session tokens and signed blobs
    (re.compile(r"[A-Za-z0-9/+]{100,}={0,2}"), "<token>"),
)


def _url(match: re.Match[str]) -> str:
    url = match.group(0)
    if _PRESIGNED_MARKERS.search(url):
        return "<presigned-url>"
    return url.split("?", 1)[0]  # other query strings may still carry tokens; the path names the object


def scrub(text: str, limit: int | None = _MAX_MESSAGE) -> str:
    """Text with credentials, signatures and presigned URLs removed, cut to `limit` characters."""
    text = _URL.sub(_url, str(text))
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs each record's message (and drops its args once formatted).

    Attach it to handlers (logger filters do not apply to records of child loggers): see `install_log_scrubber`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        record.msg = scrub(message, limit=None)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), limit=None)
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text, limit=None)
        return True


def install_log_scrubber(handlers: list[logging.Handler] | None = None) -> ScrubbingFilter:
    """Add one `ScrubbingFilter` to `handlers` (default: the root logger's handlers); returns the filter."""
    scrubber = ScrubbingFilter()
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(scrubber)
    return scrubber
