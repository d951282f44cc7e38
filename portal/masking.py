"""Secret masking for command output: ``Masker`` replaces each secret with ``***``, as written
and in every encoding a command might print it (base64 at any alignment, percent-encoding, hex,
JSON escapes, line by line for multi-line secrets, the credentials of a URL alone).

Used by the step executor (``portal.executor``) and every writer of a job log.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from portal.urlsecrets import redact_embedded_credentials, url_credentials

MASK = "***"
MIN_DERIVED_LEN = 4  # lines / base64 fragments shorter than this are not masked on their own


def _b64_variants(raw: bytes) -> set[str]:
    """Base64 text that any encoding of ``raw`` contains, whatever its alignment in the stream."""
    out: set[str] = set()
    if not raw:
        return out
    out.add(base64.b64encode(raw).decode())
    for shift, skip in ((0, 0), (1, 2), (2, 3)):
        enc = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        total = shift + len(raw)
        if total % 3:
            enc = enc[:-1]  # the last character also depends on the byte that follows
        enc = enc[skip:]
        if len(enc) >= MIN_DERIVED_LEN:
            out.add(enc)
    return out


def _encoded_variants(piece: str) -> set[str]:
    """``piece`` as a URL (percent-encoded, ``+`` for spaces), hex and JSON string would write it."""
    out = {
        quote(piece, safe=""),
        quote(piece),
        quote_plus(piece),
        piece.encode().hex(),
        piece.encode().hex().upper(),
        json.dumps(piece)[1:-1],
        json.dumps(piece, ensure_ascii=False)[1:-1],
    }
    return {v for v in out if v != piece and len(v) >= MIN_DERIVED_LEN}


class Masker:
    """Replace secret values with ``***``: as written, stripped, line by line, and as base64,
    percent-encoding, hex and JSON escapes write them; for a URL with credentials in it, the
    credentials alone (in all those forms) too."""

    def __init__(self, secrets: Iterable[str] = ()):
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.add(secret)
            pieces = [secret]
            stripped = secret.strip()
            if stripped and stripped != secret:
                variants.add(stripped)
                pieces.append(stripped)
            if "\n" in secret or "\r" in secret:
                for line in secret.splitlines():
                    line = line.strip()
                    if len(line) >= MIN_DERIVED_LEN:
                        variants.add(line)
                        pieces.append(line)
            for cred in url_credentials(secret):  # https://user:token@… : the credential alone
                variants.add(cred)
                pieces.append(cred)
            for piece in pieces:
                variants |= _encoded_variants(piece)
                for enc in _b64_variants(piece.encode()):
                    variants.add(enc)
                    # `base64` wraps at 76 columns: mask each wrapped line too
                    for i in range(0, len(enc), 76):
                        frag = enc[i : i + 76]
                        if len(frag) >= MIN_DERIVED_LEN and len(enc) > 76:
                            variants.add(frag)
        self.variants = sorted(variants, key=len, reverse=True)
        self.longest = len(self.variants[0]) if self.variants else 0
        self._single_line = [v for v in self.variants if "\n" not in v and "\r" not in v]
        self._firsts = {v[0] for v in self._single_line}
        self._re = (
            re.compile("|".join(re.escape(v) for v in self.variants)) if self.variants else None
        )

    def __bool__(self):
        return True  # credentials written into URLs are redacted even with no secrets known

    def mask(self, text: str) -> str:
        if not text:
            return text
        text = redact_embedded_credentials(text, MASK)  # whatever the secrets are
        if self._re is None:
            return text
        return self._re.sub(MASK, text)

    def split_safe(self, text: str, final: bool = False) -> tuple[str, str]:
        """Mask what can be safely released now; hold back a tail that may begin a secret.

        Returns ``(masked_text_to_emit, raw_text_to_keep)``.
        """
        if self._re is None or final:
            return self.mask(text), ""
        n = len(text)
        cut = n
        # hold back the earliest tail that could still grow into a secret: it is within the
        # last (partial) line, since multi-line secrets are also masked line by line
        start = max(text.rfind("\n") + 1, n - (self.longest - 1))
        for i in range(start, n):
            if text[i] not in self._firsts:
                continue
            suffix = text[i:]
            if any(len(v) > len(suffix) and v.startswith(suffix) for v in self._single_line):
                cut = i
                break
        for m in self._re.finditer(text):
            if m.start() < cut < m.end():
                cut = m.end()  # never cut through a complete secret
            if m.start() >= cut:
                break
        return self.mask(text[:cut]), text[cut:]
