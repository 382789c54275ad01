"""Load YAML keeping node positions, so a schema error can say `file:line:column`.

Operators and telephony engineers edit YAML by hand; an error that names the exact place is
the difference between a one-minute fix and a hunt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration file, located as precisely as known."""

    file: str
    key: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ConfigFileError(Exception):
    """A configuration file could not be used; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class LoadedYaml:
    path: str
    data: Any
    root: yaml.Node | None

    def locate(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the deepest part of `loc` that exists in the file: the
        key itself when the path ends at a mapping key (where an editor's cursor belongs)."""
        node = self.root
        best: tuple[int | None, int | None] = (None, None)
        if node is not None:
            best = (node.start_mark.line + 1, node.start_mark.column + 1)
        for part in loc:
            found = _child(node, part)
            if found is None:
                break
            key, node = found
            best = (key.start_mark.line + 1, key.start_mark.column + 1)
        return best

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        line, column = self.locate(loc)
        return Problem(self.path, format_loc(loc), message, line, column)


def _child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(where to point, the child node) for one step of a path."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if str(key_node.value) == str(part):
                return key_node, value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: yaml.Node = node.value[part]
        return child, child
    return None


def format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def schema_message(err: Any) -> str:
    """One pydantic error in the words of someone editing the YAML file (the place is said apart)."""
    kind = err.get("type", "")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (a typo?)"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


MAX_NESTING = 64  # far more than any policy, flow or traffic file needs


def nesting(text: str) -> int:
    """An upper bound on how deeply `text` nests flow collections (`[`, `{`) and indented blocks
    (pure, without parsing): enough to refuse a hostile file before a recursive parser sees it."""
    deepest = depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()}
    return max(deepest, len(indents))


def load_yaml(path: Path) -> LoadedYaml:
    """Parse `path`; syntax errors and unreadable files become a located ConfigFileError."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError([Problem(name, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError([Problem(name, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigFileError([Problem(name, "", f"cannot read: {exc.strerror}")]) from None
    deepest = nesting(text)
    if deepest > MAX_NESTING:
        # Refused before parsing: PyYAML's composer (and pydantic after it) recurse once per
        # level, and a file nested thousands deep exhausts the interpreter's stack.
        raise ConfigFileError([Problem(name, "", f"nested {deepest} levels deep; at most {MAX_NESTING}")])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigFileError([Problem(name, "", f"nested more deeply than {MAX_NESTING} levels")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ConfigFileError([Problem(name, "", f"YAML syntax: {exc.problem}", line, column)]) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError([Problem(name, "", f"YAML syntax: {exc}")]) from None
    return LoadedYaml(name, data, root)
