"""ANSI escape sequences → HTML spans (SGR colours and bold); everything else is stripped."""

import html
import re

ESCAPE_RE = re.compile(
    r"\x1b\[([0-9;]*)m|\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1b\[?[0-9;]*$"
)
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
STRIP_RE = re.compile(
    r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1b\[?[0-9;]*$"
)

COLOURS = {
    30: "black",
    31: "red",
    32: "green",
    33: "yellow",
    34: "blue",
    35: "magenta",
    36: "cyan",
    37: "white",
}


MAX_CODE_DIGITS = 3  # every SGR code Backline renders is below 1000


def _codes(params: str) -> list[int]:
    """The SGR codes of ``params`` ("1;31"); a number longer than MAX_CODE_DIGITS means
    nothing to us and is skipped unparsed (a 5,000-digit one used to raise and 500 the page)."""
    if not params:
        return [0]
    return [int(c) for c in params.split(";") if c and len(c) <= MAX_CODE_DIGITS]


def strip(text: str) -> str:
    return CONTROL_RE.sub("", STRIP_RE.sub("", text)).replace("\r\n", "\n")


def to_html(text: str) -> str:
    """Escape ``text`` for HTML and render SGR colours as ``<span class="ansi-...">``."""
    out = []
    classes: dict[str, str] = {}
    open_span = False
    pos = 0
    text = text.replace("\r\n", "\n")
    for m in ESCAPE_RE.finditer(text):
        out.append(html.escape(CONTROL_RE.sub("", text[pos : m.start()]), quote=False))
        pos = m.end()
        if m.group(1) is None:
            continue  # a non-colour escape: dropped
        codes = _codes(m.group(1))
        for code in codes:
            if code == 0:
                classes = {}
            elif code == 1:
                classes["b"] = "ansi-bold"
            elif code == 2:
                classes["d"] = "ansi-dim"
            elif code == 22:
                classes.pop("b", None)
                classes.pop("d", None)
            elif code in COLOURS:
                classes["fg"] = f"ansi-{COLOURS[code]}"
            elif 90 <= code <= 97:
                classes["fg"] = f"ansi-bright-{COLOURS[code - 60]}"
            elif code == 39:
                classes.pop("fg", None)
        if open_span:
            out.append("</span>")
            open_span = False
        if classes:
            out.append(f'<span class="{" ".join(sorted(classes.values()))}">')
            open_span = True
    out.append(html.escape(CONTROL_RE.sub("", text[pos:]), quote=False))
    if open_span:
        out.append("</span>")
    return "".join(out)
