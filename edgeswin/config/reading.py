"""Reading a config file safely: bounded YAML (size, FIFOs, nesting, alias expansion, huge
integers) with the line of every key, so that every error can say file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigIssue
from ..files import NotASmallFile, read_small
from .fields import INT_TAG, MAX_FILE_BYTES, MAX_INT_DIGITS, MAX_NESTING, MAX_NODES

# --- YAML with line numbers -------------------------------------------------------------

def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path to the 1-based line where its value (or key) starts."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value,)
            out[sub] = key.start_mark.line + 1
            _line_map(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out


def _duplicate_keys(node: yaml.Node, path: tuple = ()) -> list[tuple[tuple, int]]:
    found: list[tuple[tuple, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append((path + (key.value,), key.start_mark.line + 1))
            seen.add(key.value)
            found += _duplicate_keys(value, path + (key.value,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, path + (i,))
    return found


def _read_text(path: Path) -> str:
    """A config file's text; _Unreadable(line, message) for what is not a small UTF-8 file."""
    try:
        raw = read_small(path, MAX_FILE_BYTES)
    except NotASmallFile as exc:
        raise _Unreadable(1, str(exc)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise _Unreadable(line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                                f"{exc.start})") from None


class _Unreadable(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _bounded(root: yaml.Node) -> None:
    """Refuse trees too deep to walk or, with aliases expanded, too large to build. An alias
    is a shared node: each is measured once, so a "billion laughs" costs a few thousand steps."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, expanded height)
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        line = node.start_mark.line + 1
        if children_done:
            open_nodes.discard(id(node))
            kids = [measured[id(c)] for c in _children(node)]
            size = 1 + sum(k[0] for k in kids)
            height = 1 + max((k[1] for k in kids), default=0)
            if size > MAX_NODES:
                raise _Unreadable(line, f"expands to more than {MAX_NODES:,} values "
                                        "(aliases of aliases?): refused")
            if height > MAX_NESTING:
                raise _Unreadable(line, f"nested more than {MAX_NESTING} levels deep: refused")
            measured[id(node)] = (size, height)
            continue
        if id(node) in measured:
            continue
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise _Unreadable(key.start_mark.line + 1,
                                      "a key must be a plain name, not a list or mapping")
        elif (isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG
              and len(node.value) > MAX_INT_DIGITS):
            raise _Unreadable(line, f"a number of {len(node.value)} digits: refused")
        if id(node) in open_nodes:
            raise _Unreadable(line, "an alias refers to a node that contains it: refused")
        if len(open_nodes) > MAX_NESTING:
            raise _Unreadable(line, f"nested more than {MAX_NESTING} levels deep: refused")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in measured)


def _read_yaml(path: Path, issues: list[ConfigIssue]) -> tuple[Any, dict[tuple, int]] | None:
    try:
        text = _read_text(path)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _bounded(node)  # before anything walks it or builds Python objects from it
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except OSError as exc:
        issues.append(ConfigIssue(str(path), 0, "", f"cannot read: {exc.strerror}"))
        return None
    except _Unreadable as exc:
        issues.append(ConfigIssue(str(path), exc.line, "", exc.message))
        return None
    except (ValueError, TypeError) as exc:  # a value PyYAML cannot build, past our checks
        issues.append(ConfigIssue(str(path), 1, "", f"cannot read a value: {exc}"))
        return None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        issues.append(ConfigIssue(str(path), 1, "", f"nested more than {MAX_NESTING} levels "
                                                    "deep: refused"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        issues.append(ConfigIssue(str(path), line, "", f"malformed YAML: {problem}"))
        return None
    if node is None:
        return {}, {(): 1}
    for key_path, line in _duplicate_keys(node):
        issues.append(ConfigIssue(str(path), line, ".".join(map(str, key_path)), "duplicate key"))
    return data, _line_map(node)


def read_config_file(path: Path) -> Any:
    """One config file's data, read with the same bounds as `load_config` (size, FIFO,
    nesting, alias expansion); None when it cannot be read (`load_config` says why)."""
    parsed = _read_yaml(path, [])
    return parsed[0] if parsed is not None else None
