"""Text a person or a client supplied, made safe to show: control characters (escape sequences that could hide or
forge the lines an officer reads), line breaks and the invisible or direction-changing characters of Unicode are
written as visible escapes. The JSON outputs escape them already (`\\u001b`)."""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text) -> str:
    """`text` with every control, line-breaking, invisible or bidirectional character shown as an escape."""
    return _UNSAFE.sub(_escape, "" if text is None else str(text))
