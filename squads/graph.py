"""Server-drawn SVG of a service's neighbourhood: who depends on it (left), the service
(centre), what it depends on (right). Readable without JavaScript; every node is a link."""

from dataclasses import dataclass
from html import escape

NODE_W, NODE_H, GAP_Y, COL_X = 210, 34, 14, (10, 330, 650)
WIDTH = 870


@dataclass
class Node:
    label: str
    url: str
    kind: str  # service | resource | self
    sub: str = ""
    deprecated: bool = False


def _column(nodes, x, total_h):
    h = len(nodes) * NODE_H + max(len(nodes) - 1, 0) * GAP_Y
    y0 = (total_h - h) / 2
    out = []
    for i, node in enumerate(nodes):
        out.append((node, x, y0 + i * (NODE_H + GAP_Y)))
    return out


def _node_svg(node, x, y):
    cls = f"node {node.kind}" + (" deprecated" if node.deprecated else "")
    label = node.label if len(node.label) <= 26 else node.label[:25] + "…"
    sub = f"<title>{escape(node.label)}{' · ' + escape(node.sub) if node.sub else ''}</title>"
    return (
        f'<a href="{escape(node.url)}" class="{cls}">{sub}'
        f'<rect x="{x}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
        f'<text x="{x + 12}" y="{y + 21:.0f}">{escape(label)}'
        + (
            f' <tspan class="muted" font-size="10" fill="#667085">{escape(node.sub)}</tspan>'
            if node.sub and node.kind != "self"
            else ""
        )
        + "</text></a>"
    )


def render(center: Node, upstream: list, downstream: list) -> str:
    """upstream: what the centre depends on (right column); downstream: its dependents (left)."""
    rows = max(len(upstream), len(downstream), 1)
    total_h = rows * NODE_H + (rows - 1) * GAP_Y + 40
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {total_h}" role="img" aria-label="Dependency graph of {escape(center.label)}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#9aa3b8"/></marker></defs>',
        f'<text x="{COL_X[0]}" y="14" font-size="11" fill="#667085">DEPENDED ON BY ({len(downstream)})</text>',
        f'<text x="{COL_X[2]}" y="14" font-size="11" fill="#667085">DEPENDS ON ({len(upstream)})</text>',
    ]
    body_h = total_h - 20
    cy = 20 + (body_h - NODE_H) / 2
    left = _column(downstream, COL_X[0], body_h)
    right = _column(upstream, COL_X[2], body_h)
    for _, x, y in left:
        parts.append(_edge(x + NODE_W, 20 + y + NODE_H / 2, COL_X[1], cy + NODE_H / 2))
    for _, x, y in right:
        parts.append(_edge(COL_X[1] + NODE_W, cy + NODE_H / 2, x, 20 + y + NODE_H / 2))
    for node, x, y in left + right:
        parts.append(_node_svg(node, x, 20 + y))
    parts.append(_node_svg(center, COL_X[1], cy))
    if not upstream and not downstream:
        parts.append(
            f'<text x="{COL_X[1]}" y="{cy + NODE_H + 18:.0f}" font-size="12" fill="#667085">No dependencies recorded.</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _edge(x1, y1, x2, y2):
    mx = (x1 + x2) / 2
    return f'<path class="edge" d="M {x1:.0f} {y1:.0f} C {mx:.0f} {y1:.0f}, {mx:.0f} {y2:.0f}, {x2 - 2:.0f} {y2:.0f}" marker-end="url(#arrow)"/>'
