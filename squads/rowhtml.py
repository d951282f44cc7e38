"""The catalog page's row of a service as HTML, in two parts stitched with the read form
(``squads.stitch``: ``ServiceView.html_head`` and ``html_tail``): the cells before the
scorecard (name, description, owner and tribe, system, lifecycle, tier) and the tags after it.
The page joins 25 stored parts around the scorecard and last-run cells, which change with
every run that finishes and are built per request; escaping, truncating and URL-reversing
each value per request was a fifth of the page's Python. A read form stitched before these
columns existed has them empty: the page builds its parts from the stored list row instead."""

import html

from django.utils.text import Truncator, add_truncation_text, calculate_truncate_chars_length

from squads import documents

DESCRIPTION_CHARS = 90


def escape(value) -> str:
    """``django.utils.html.escape`` without its lazy-string wrapper: the same characters
    escaped, for text joined into a fragment marked safe as a whole."""
    return html.escape(str(value))


def _description(text):
    """``Truncator(text).chars(90)``, with its result for ASCII text computed directly (no
    combining characters, NFC leaves it as is)."""
    if not text.isascii():
        return Truncator(text).chars(DESCRIPTION_CHARS)
    if len(text) <= DESCRIPTION_CHARS:
        return text
    return add_truncation_text(text[: calculate_truncate_chars_length(DESCRIPTION_CHARS, None)])


def _owner_cell(slug, owner_name, tribe_name):
    if not slug:
        return '<span class="badge badge-bad">no owner</span>'
    url = documents.url_of("squads:squad_detail", slug)
    tribe = f'<div class="muted small">{escape(tribe_name)}</div>' if tribe_name else ""
    return f'<a href="{url}">{escape(owner_name or "")}</a>{tribe}'


def _system_cell(slug, system_name):
    if not slug:
        return '<span class="muted">—</span>'
    url = documents.url_of("squads:system_detail", slug)
    return f'<a href="{url}">{escape(system_name or "")}</a>'


def head(row: dict, owner_name: str, tribe_name: str, system_name: str) -> str:
    """The row's opening and its cells before the scorecard; ``row``: the stored list row
    (``documents.list_row``)."""
    description = escape(_description(row["description"] or ""))
    lifecycle = escape(row["lifecycle"])
    return (
        f'<tr>\n      <td><a class="svc-link" href="{escape(row["url"])}"><strong>'
        f'{escape(row["name"])}</strong></a><div class="muted small">{description}</div></td>\n'
        f'      <td class="nowrap">{_owner_cell(row["owner"], owner_name, tribe_name)}</td>\n'
        f"      <td>{_system_cell(row['system'], system_name)}</td>\n"
        f'      <td><span class="badge badge-{lifecycle}">{lifecycle}</span></td>\n'
        f'      <td class="nowrap">Tier {int(row["tier"])}</td>\n'
    )


def tail(row: dict) -> str:
    """The row's tags cell and its end."""
    tags = "".join(f'<span class="tag">{escape(t)}</span>' for t in row["tags"])
    return f"      <td>{tags}</td>\n    </tr>\n"
