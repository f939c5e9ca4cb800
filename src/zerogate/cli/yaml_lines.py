"""Find the line of a path like ("users", 12, "department") in a YAML text.

Used only when the control plane reports problems, so the fast C loader can parse the
file normally and this slower node walk runs once, on failure.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(key node, value node) of one step, or Nones when the path leaves the document."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return None, node.value[part]
    return None, None


def line_of(text: str, path: Sequence[str | int]) -> int | None:
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError:
        return None
    line = None
    for part in path:
        if node is None:
            break
        key, value = _child(node, part)
        if value is None:
            break  # e.g. a missing required field: point at the object that lacks it
        anchor = key or value
        line, node = anchor.start_mark.line + 1, value
    if line is None and node is not None:
        line = node.start_mark.line + 1
    return line
