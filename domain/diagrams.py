"""Pictures of a plan: Mermaid (GitHub, many wikis) and Graphviz DOT. A good that appears
twice in the tree is two boxes, since each node is its own purchase or production."""

from __future__ import annotations

from domain.enums import Acquisition
from domain.plan import PlanNode


def _label(node: PlanNode) -> str:
    parts = [node.good, node.method.value + (f" at {node.waypoint}" if node.waypoint else "")]
    if node.supply:
        parts.append(f"{node.supply.name} supply")
    if node.below_threshold:
        parts.append("below threshold")
    return "\\n".join(parts)


def _id(node: PlanNode) -> str:
    return "n" + node.path.replace(".", "_")


def mermaid(tree: PlanNode) -> str:
    """A flowchart from the inputs up to the target (arrows follow the goods)."""
    lines = ["flowchart BT"]
    for node, parent in tree.walk():
        shape = ('(["', '"])') if node.method is Acquisition.BUY else ('["', '"]')
        text = _label(node).replace("\\n", "<br/>").replace('"', "'")
        lines.append(f"    {_id(node)}{shape[0]}{text}{shape[1]}")
        if parent is not None:
            lines.append(f"    {_id(node)} --> {_id(parent)}")
    return "\n".join(lines)


def dot(tree: PlanNode) -> str:
    """A Graphviz digraph: `goods-factory plan X --format dot | dot -Tsvg > plan.svg`."""
    lines = ["digraph plan {", "    rankdir=BT;", '    node [fontname="Helvetica"];']
    for node, parent in tree.walk():
        shape = "ellipse" if node.method is Acquisition.BUY else "box"
        text = _label(node).replace('"', '\\"')
        lines.append(f'    {_id(node)} [label="{text}", shape={shape}];')
        if parent is not None:
            lines.append(f"    {_id(node)} -> {_id(parent)};")
    lines.append("}")
    return "\n".join(lines)
