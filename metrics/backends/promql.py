"""A parser for the PromQL subset the builtin backend evaluates (see ``promql_eval``).

``parse(text)`` returns a tree of the node classes below. Two kinds of failure, both
``BackendError`` (shown to the user, a 400 where a query is saved):

- ``PromQLSyntaxError``: not PromQL at all (``sum by le (x)``, ``rate(x[5m]``), naming what
  was expected where;
- ``UnsupportedConstruct``: valid PromQL the builtin backend does not evaluate (``offset``,
  subqueries, ``topk``, ``group_left``, functions outside ``FUNCTIONS``), naming the construct.
"""

import math
import re
from dataclasses import dataclass, field
from typing import cast

from metrics.backends.base import BackendError
from metrics.backends.promql_math import SIMPLE


class PromQLSyntaxError(BackendError):
    pass


class UnsupportedConstruct(BackendError):
    def __init__(self, construct: str):
        super().__init__(
            f"the builtin backend does not support {construct} (unsupported construct); "
            "see the README's 'PromQL subset of the builtin backend'"
        )
        self.construct = construct


# --- nodes ------------------------------------------------------------------------------------
@dataclass
class Number:
    value: float


@dataclass
class String:
    value: str


@dataclass
class Selector:
    name: str | None
    matchers: list  # [(label, op, value)]
    range: float | None = None  # seconds, for a range selector


@dataclass
class Call:
    fn: str
    args: list


@dataclass
class Aggregate:
    op: str
    expr: object
    grouping: list = field(default_factory=list)
    without: bool = False
    param: object = None


@dataclass
class Binary:
    op: str
    lhs: object
    rhs: object
    bool_mode: bool = False
    on: list | None = None  # on(...) labels; None: match on all but ignoring
    ignoring: list = field(default_factory=list)


@dataclass
class Neg:
    expr: object


# name -> argument kinds ("v" instant vector, "m" range vector, "s" scalar; upper case: optional)
FUNCTIONS = {
    **{fn: "v" for fn in SIMPLE},
    "round": "vS",
    "clamp": "vss",
    "clamp_min": "vs",
    "clamp_max": "vs",
    "pi": "",
    "changes": "m",
    "resets": "m",
    "last_over_time": "m",
    "present_over_time": "m",
    "rate": "m",
    "increase": "m",
    "irate": "m",
    "delta": "m",
    "idelta": "m",
    "count_over_time": "m",
    "sum_over_time": "m",
    "avg_over_time": "m",
    "min_over_time": "m",
    "max_over_time": "m",
    "histogram_quantile": "sv",
    "vector": "s",
    "scalar": "v",
    "time": "",
}
KNOWN_FUNCTIONS = {
    *FUNCTIONS,
    *"""absent absent_over_time acos acosh asin asinh atan atanh changes clamp clamp_max
    clamp_min cos cosh day_of_month day_of_week day_of_year days_in_month deg deriv exp hour
    histogram_count histogram_fraction histogram_stddev histogram_stdvar histogram_sum
    holt_winters label_join label_replace last_over_time ln log10 log2 minute month pi
    predict_linear present_over_time quantile_over_time rad resets round sgn sin sinh sort
    sort_desc sqrt stddev_over_time stdvar_over_time tan tanh timestamp year""".split(),
}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group"}
KNOWN_AGGREGATIONS = {*AGGREGATIONS, "stddev", "stdvar", "topk", "bottomk", "quantile"}
KNOWN_AGGREGATIONS |= {"count_values"}
MAX_DEPTH = 64  # nesting of parentheses / calls / operators (bounds the recursion)
# binary operators in one query: "a + a + ... + a" nests each one inside the next (the tree is
# as deep as the chain is long, and evaluating it recursed past Python's limit: a 500)
MAX_OPERATORS = 200
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
# binding power of binary operators, loosest first
LEVELS = [{"or"}, {"and", "unless"}, COMPARISONS, {"+", "-"}, {"*", "/", "%", "atan2"}]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<range>\[[^\]]*\])
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=(){},@])
    )""",
    re.X,
)
_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """``5m``, ``1h30m``, ``90s`` → seconds (Prometheus' duration syntax)."""
    text = text.strip()
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise PromQLSyntaxError(f"bad duration {text!r}: use e.g. 30s, 5m, 1h")
    return total


def re2_to_python(pattern: str) -> str:
    """RE2 (Prometheus) allows flags such as ``(?i)`` anywhere, applying to the rest of the
    enclosing group; Python only at the start. Rewrite them as scoped ``(?i:...)`` groups."""
    out, closers, depth_stack, k, in_class = [], 0, [], 0, False
    while k < len(pattern):
        ch = pattern[k]
        if ch == "\\":
            out.append(pattern[k : k + 2])
            k += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        else:
            flags = re.match(r"\(\?([a-zA-Z]+)\)", pattern[k:])
            if flags and k > 0:
                out.append(f"(?{flags.group(1)}:")
                depth_stack.append(closers)
                k += flags.end()
                continue
            if ch == "(":
                closers += 1
            elif ch == ")":
                closers -= 1
                while depth_stack and depth_stack[-1] > closers:
                    depth_stack.pop()
                    out.append(")")
        out.append(ch)
        k += 1
    out.extend(")" * len(depth_stack))
    return "".join(out)


def compile_regex(value: str):
    """A label matcher's regular expression (anchored by the caller, as Prometheus)."""
    try:
        return re.compile(re2_to_python(value))
    except re.error as exc:
        raise PromQLSyntaxError(f"bad regular expression {value!r}: {exc}") from exc


def _unquote(text: str) -> str:
    if text[0] == "`":
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PromQLSyntaxError(f"unexpected character {text[pos:].strip()[:1]!r} at {pos}")
        kind = cast(str, m.lastgroup)  # every alternative of _TOKEN is a named group
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.operators = 0

    # token helpers
    def peek(self, k=0):
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, value, kind=None):
        k, v, _ = self.peek()
        return v.lower() == value if kind in (None, k) and k != "string" else False

    def expect(self, value, what):
        kind, v, pos = self.take()
        if v != value or kind == "string":
            found = repr(v) if v else "the end of the query"
            raise PromQLSyntaxError(f"expected {value!r} {what}, found {found} at {pos}")

    def error(self, what):
        _, v, pos = self.peek()
        found = repr(v) if v else "end of the query"
        raise PromQLSyntaxError(f"unexpected {found} at {pos}: expected {what}")

    # grammar
    def parse(self):
        node = self.expr(0)
        if self.peek()[0] != "end":
            self.error("an operator or the end of the query")
        return node

    def expr(self, level):
        if level == 0:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise PromQLSyntaxError(f"the query nests more than {MAX_DEPTH} levels deep")
        if level == len(LEVELS):
            return self.unary()
        lhs = self.expr(level + 1)
        while self.peek()[0] in ("op", "ident") and self.peek()[1].lower() in LEVELS[level]:
            op = self.take()[1].lower()
            self.operators += 1
            if self.operators > MAX_OPERATORS:
                raise PromQLSyntaxError(f"the query has more than {MAX_OPERATORS} binary operators")
            node = Binary(op, lhs, None)
            self.modifiers(node)
            node.rhs = self.expr(level + 1)
            lhs = node
        if level == 0:
            self.depth -= 1
        return lhs

    def modifiers(self, node):
        if self.at("bool", "ident"):
            if node.op not in COMPARISONS:
                self.error("no 'bool' (it only applies to comparison operators)")
            self.take()
            node.bool_mode = True
        for word in ("on", "ignoring"):
            if self.at(word, "ident"):
                self.take()
                labels = self.label_list(word)
                if word == "on":
                    node.on = labels
                else:
                    node.ignoring = labels
        for word in ("group_left", "group_right"):
            if self.at(word, "ident"):
                raise UnsupportedConstruct(f"{word} (many-to-one matching)")

    def unary(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise PromQLSyntaxError(f"the query nests more than {MAX_DEPTH} levels deep")
        try:
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self):
        if self.peek()[:2] in (("op", "-"), ("op", "+")):
            sign = self.take()[1]
            inner = self.unary()
            if isinstance(inner, Number):
                return Number(-inner.value if sign == "-" else inner.value)
            return Neg(inner) if sign == "-" else inner
        node = self.postfix()
        if self.peek()[:2] == ("op", "^"):
            self.take()
            return Binary("^", node, self.unary())
        return node

    def postfix(self):
        node = self.primary()
        while True:
            kind, value, pos = self.peek()
            if kind == "range":
                self.take()
                if ":" in value:
                    raise UnsupportedConstruct(f"subqueries ({value})")
                if not isinstance(node, Selector) or node.range is not None:
                    raise PromQLSyntaxError(
                        f"a range {value} at {pos} can only follow a metric selector"
                    )
                node.range = parse_duration(value[1:-1])
            elif kind == "ident" and value.lower() == "offset":
                raise UnsupportedConstruct("the offset modifier")
            elif (kind, value) == ("op", "@"):
                raise UnsupportedConstruct("the @ modifier")
            else:
                return node

    def primary(self):
        kind, value, pos = self.peek()
        if kind == "number":
            self.take()
            return Number(float(int(value, 16)) if value[:2].lower() == "0x" else float(value))
        if kind == "string":
            self.take()
            return String(_unquote(value))
        if (kind, value) == ("op", "("):
            self.take()
            node = self.expr(0)
            self.expect(")", f"to close the parenthesis opened at {pos}")
            return node
        if (kind, value) == ("op", "{"):
            return Selector(None, self.matchers())
        if kind != "ident":
            self.error("a number, a metric selector, a function or an aggregation")
        low = value.lower()
        if low in ("inf", "nan"):
            self.take()
            return Number(math.inf if low == "inf" else math.nan)
        if low in KNOWN_AGGREGATIONS:
            return self.aggregation()
        if self.peek(1)[:2] == ("op", "("):
            return self.call()
        self.take()
        matchers = self.matchers() if self.peek()[:2] == ("op", "{") else []
        return Selector(value, matchers)

    def label_list(self, what):
        if self.peek()[:2] != ("op", "("):
            _, v, pos = self.peek()
            raise PromQLSyntaxError(
                f"`{what}` needs a parenthesised label list, e.g. `sum {what} (le) (...)`; "
                f"found {v!r} at {pos}"
            )
        self.take()
        labels = []
        while self.peek()[:2] != ("op", ")"):
            kind, label, pos = self.take()
            if kind != "ident" or ":" in label:
                raise PromQLSyntaxError(f"expected a label name in {what}(...), found {label!r}")
            labels.append(label)
            if self.peek()[:2] == ("op", ","):
                self.take()
            elif self.peek()[:2] != ("op", ")"):
                self.error(f"',' or ')' in {what}(...)")
        self.take()
        return labels

    def aggregation(self):
        op = self.take()[1].lower()
        if op not in AGGREGATIONS:
            raise UnsupportedConstruct(f"the {op}() aggregation")
        node = Aggregate(op, None)
        self.grouping(node)
        self.expect("(", f"after {op}")
        node.expr = self.expr(0)
        self.expect(")", f"to close {op}(")
        self.grouping(node)
        return node

    def grouping(self, node):
        for word in ("by", "without"):
            if self.at(word, "ident"):
                self.take()
                node.grouping = self.label_list(word)
                node.without = word == "without"

    def call(self):
        _, fn, pos = self.take()
        if fn not in KNOWN_FUNCTIONS:
            raise PromQLSyntaxError(f"unknown function {fn}() at {pos}")
        if fn not in FUNCTIONS:
            raise UnsupportedConstruct(f"the {fn}() function")
        self.take()  # (
        args = []
        while self.peek()[:2] != ("op", ")"):
            args.append(self.expr(0))
            if self.peek()[:2] == ("op", ","):
                self.take()
            elif self.peek()[:2] != ("op", ")"):
                self.error(f"',' or ')' in the arguments of {fn}()")
        self.take()
        kinds = FUNCTIONS[fn]
        required = len(kinds.rstrip("VMS"))
        if not required <= len(args) <= len(kinds):
            raise PromQLSyntaxError(f"{fn}() takes {len(kinds)} argument(s), got {len(args)}")
        for arg, kind in zip(args, kinds.lower(), strict=False):
            is_range = isinstance(arg, Selector) and arg.range is not None
            if kind == "m" and not is_range:
                raise PromQLSyntaxError(f"{fn}() needs a range selector like x[5m]")
            if kind != "m" and is_range:
                raise PromQLSyntaxError(f"{fn}() takes no range selector")
        return Call(fn, args)

    def matchers(self):
        self.take()  # {
        out = []
        while self.peek()[:2] != ("op", "}"):
            kind, label, pos = self.take()
            if kind != "ident":
                raise PromQLSyntaxError(f"expected a label name at {pos}, found {label!r}")
            op_kind, op, op_pos = self.take()
            if op not in ("=", "!=", "=~", "!~"):
                raise PromQLSyntaxError(f"expected =, !=, =~ or !~ at {op_pos}, found {op!r}")
            v_kind, value, v_pos = self.take()
            if v_kind != "string":
                raise PromQLSyntaxError(f"expected a quoted label value at {v_pos}")
            value = _unquote(value)
            if op in ("=~", "!~"):
                compile_regex(value)
            out.append((label, op, value))
            if self.peek()[:2] == ("op", ","):
                self.take()
            elif self.peek()[:2] != ("op", "}"):
                self.error("',' or '}' in the label matchers")
        self.take()
        return out


def parse(text: str):
    if not text or not text.strip():
        raise PromQLSyntaxError("the query is empty")
    node = Parser(text).parse()
    if isinstance(node, Selector) and node.name is None and not node.matchers:
        raise PromQLSyntaxError("a selector needs a metric name or at least one label matcher")
    return node
