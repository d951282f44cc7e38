"""Bounded parsing of JSON and YAML that comes from outside (API bodies, webhooks, pipeline specs,
Backstage files): a nesting depth limit, a size limit and, for YAML, a limit on aliases and on the
size the document would have with every alias expanded (a 512-byte "billion laughs" is refused
before anything walks it).

Every refusal is a :class:`TooComplex` (a ``ValueError``; for YAML also a ``yaml.MarkedYAMLError``
with the line, so YAML callers that already report ``yaml.YAMLError`` need no change).
"""

import json
import re
from collections.abc import Iterator
from itertools import accumulate

import yaml

MAX_DEPTH = 64
MAX_JSON_BYTES = 30 * 1024 * 1024
MAX_YAML_ALIASES = 1000
MAX_YAML_ALIAS_NODES = 100_000  # nodes the aliases of one stream add once expanded

YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class TooComplex(ValueError):
    """The input is nested too deeply, too large, or expands too much."""

    code = "too_complex"


class YamlTooComplex(TooComplex, yaml.MarkedYAMLError):
    def __init__(self, problem: str, mark=None):
        yaml.MarkedYAMLError.__init__(self, problem=problem, problem_mark=mark)
        self.problem = problem

    def __str__(self):
        where = f" (line {self.problem_mark.line + 1})" if self.problem_mark else ""
        return f"{self.problem}{where}"


def json_depth(data: str | bytes) -> int:
    """The deepest nesting of arrays/objects in a JSON text, without recursion (strings are
    skipped; a text that is not JSON gets some number and fails later in ``json.loads``)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def loads_json(
    data: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_JSON_BYTES, **kwargs
):
    """``json.loads`` (``kwargs`` passed on) with a depth and size limit. Raises TooComplex or
    ValueError."""
    if len(data) > max_bytes:
        raise TooComplex(f"the JSON document is larger than {max_bytes} bytes")
    if json_depth(data) > max_depth:
        raise TooComplex(f"the JSON document is nested deeper than {max_depth} levels")
    try:
        return json.loads(data, **kwargs)
    except RecursionError:  # pragma: no cover - the depth check runs first
        raise TooComplex(f"the JSON document is nested deeper than {max_depth} levels") from None


def check_yaml(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_aliases: int = MAX_YAML_ALIASES,
    max_alias_nodes: int = MAX_YAML_ALIAS_NODES,
) -> None:
    """Walk the YAML event stream once (no objects built) and refuse documents nested deeper than
    ``max_depth``, with more than ``max_aliases`` aliases, or whose aliases would add more than
    ``max_alias_nodes`` nodes once expanded. YAML syntax errors propagate as usual."""
    sizes: dict[str, int] = {}  # anchor -> node count with its aliases expanded
    frames: list[list] = []  # open collections: [anchor, node count so far]
    aliases = expanded = 0
    for event in _events(text, max_depth):
        if isinstance(event, yaml.CollectionStartEvent):
            frames.append([event.anchor, 1])
            if len(frames) > max_depth:
                raise YamlTooComplex(f"nested deeper than {max_depth} levels", event.start_mark)
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = frames.pop()
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(event.anchor or "", 1)
            aliases += 1
            expanded += size
            if aliases > max_aliases or expanded > max_alias_nodes:
                raise YamlTooComplex(
                    f"too many aliases (more than {max_aliases}, or expanding to more than "
                    f"{max_alias_nodes} nodes)",
                    event.start_mark,
                )
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        else:
            continue
        if anchor:
            sizes[anchor] = size
        if frames:
            frames[-1][1] += size


def _events(text: str, max_depth: int) -> Iterator:
    """The event stream, libyaml's nesting limit reported as ours."""
    return _nesting_as_ours(yaml.parse(text, Loader=YamlLoader), max_depth)


def _nesting_as_ours(stream: Iterator, max_depth: int) -> Iterator:
    """``stream`` (events or documents) with libyaml's own nesting limit (1,000 flow levels)
    raised as :class:`YamlTooComplex`, like the limit of ``max_depth`` levels it stands for."""
    try:
        yield from stream
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" not in str(exc.problem):
            raise
        raise YamlTooComplex(f"nested deeper than {max_depth} levels", exc.problem_mark) from None


def load_yaml_all(text: str, *, loader=YamlLoader, **limits) -> Iterator:
    """Every document of a YAML stream (lazily, as ``yaml.load_all``), after :func:`check_yaml`.
    A syntax error is left to the loader, so it is raised at the document it is in. ``loader``:
    a subclass of ``YamlLoader`` building the same objects (the Backstage importer's). A loader
    that refuses deep nesting itself as it builds (``CHECKS_DEPTH``) skips the separate pass
    when the text cannot hold an anchor (so no alias can expand): the default limits only."""
    if not (getattr(loader, "CHECKS_DEPTH", False) and not limits and not may_anchor(text)):
        try:
            check_yaml(text, **limits)
        except TooComplex:
            raise
        except yaml.YAMLError:
            pass
    yield from _nesting_as_ours(yaml.load_all(text, Loader=loader), MAX_DEPTH)


# An anchor is ``&name`` at the start of a node: after a space, a line start or a flow
# indicator (``"key":&a`` in flow style too). Matched in quoted text as well: never missed.
_MAY_ANCHOR = re.compile(r"(?:^|[\s\ufeff\[\]{},:])&[^\s\[\]{},]", re.M)


def may_anchor(text: str) -> bool:
    """Whether ``text`` may define a YAML anchor (without one, no alias can resolve)."""
    return "&" in text and _MAY_ANCHOR.search(text) is not None


def compose_yaml(text: str, **limits):
    """The node tree of a single-document YAML text (pure-Python loader: nodes keep their
    marks for line numbers), after :func:`check_yaml`."""
    check_yaml(text, **limits)
    return yaml.compose(text, Loader=yaml.SafeLoader)
