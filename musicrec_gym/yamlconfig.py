"""YAML config files read safely, with the line of every key and value.

``Located`` parses a document with ``LimitedLoader`` (safe tags only; nesting, alias
uses and the size with aliases expanded are limited, so an alias bomb fails in
milliseconds) and records where each key path was written, so that every error names
the file, the line and the key path::

    quickstart.yaml, line 12: agents[3].params.alpah: unknown parameter 'alpah' ...

Limits: a file of at most ``MAX_CONFIG_BYTES`` (1 MB) with at most ``MAX_YAML_NODES``
(50,000) nodes once its aliases are expanded, ``MAX_YAML_ALIASES`` (1,000) alias uses,
``MAX_YAML_DEPTH`` (64) levels of nesting and no recursive alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from musicrec_gym.errors import ConfigError

#: Largest config file, in bytes.
MAX_CONFIG_BYTES = 1_000_000
#: Most YAML nodes of a document once aliases are expanded (a "billion laughs" bomb of
#: nested aliases is refused here, before it is expanded).
MAX_YAML_NODES = 50_000
#: Most alias uses (``*anchor``) in a document.
MAX_YAML_ALIASES = 1_000
#: Deepest nesting of mappings and lists.
MAX_YAML_DEPTH = 64

#: A key path in a document: mapping keys and list indices, e.g. ``("agents", 3, "params")``.
KeyPath = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitedLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that refuses documents nested, aliased or expanded past the limits.

    It counts while composing (before anything is constructed), so an alias bomb or a
    deeply nested document fails in milliseconds with a message naming the file and line.
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0
        self.aliases = 0
        self.nodes = 0

    def _refuse(self, message: str) -> ConfigError:
        mark = self.peek_event().start_mark if self.check_event() else None
        line = f", line {mark.line + 1}" if mark is not None else ""
        return ConfigError(f"{self.source}{line}: {message}")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, counting aliases, nodes and depth against the limits."""
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise self._refuse(
                    f"more than {MAX_YAML_ALIASES:,} aliases (*anchor); a config needs few"
                )
            return super().compose_node(parent, index)
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise self._refuse(f"more than {MAX_YAML_NODES:,} YAML nodes; a config is far smaller")
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise self._refuse(
                    f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs a few"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def children_of(node: yaml.Node) -> list[yaml.Node]:
    """The key and value nodes of a mapping, the items of a list, else none."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expanded_size(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases refer to themselves or expand past ``MAX_YAML_NODES``.

    Counts the nodes the document would have with every alias expanded, without
    expanding anything (each distinct node is visited once).
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in children_of(node))
            if size > MAX_YAML_NODES:
                raise ConfigError(
                    f"{source}, line {node.start_mark.line + 1}: this value expands to more "
                    f"than {MAX_YAML_NODES:,} YAML nodes once its aliases (*anchor) are "
                    "expanded; a config is far smaller (is it an alias bomb?)"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in children_of(node):
            if id(child) in on_path:
                raise ConfigError(
                    f"{source}, line {child.start_mark.line + 1}: an alias (*anchor) refers "
                    "to a value that contains it (a recursive structure); a config cannot "
                    "be recursive"
                )
            if id(child) not in sizes:
                stack.append((child, False))


class Located:
    """A parsed YAML document with the line of every key and value, by key path.

    The document is read with ``LimitedLoader`` (safe tags only; the nesting, aliases and
    expanded size limited by ``MAX_YAML_DEPTH``, ``MAX_YAML_ALIASES`` and
    ``MAX_YAML_NODES``), and ``text`` may have at most ``MAX_CONFIG_BYTES`` characters.
    """

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.key_lines: dict[KeyPath, int] = {}
        self.value_lines: dict[KeyPath, int] = {}
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{source}: the config is {len(text):,} characters long; the limit is "
                f"{MAX_CONFIG_BYTES:,} (a config is a short hand-written file)"
            )
        try:
            loader = LimitedLoader(text, source)
            try:
                node = loader.get_single_node()
                if node is not None:
                    check_expanded_size(node, source)
                    # Walk before constructing: constructing flattens merge keys in place.
                    self._walk(node, ())
                self.data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except ConfigError:
            raise
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = err.problem or err.context or "syntax error"
            raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{source}: invalid YAML: {err}") from err
        except (ValueError, OverflowError, RecursionError) as err:
            # A scalar YAML cannot convert (a date like 2001-13-45, an int of more digits
            # than Python converts), or nesting past what the parser can hold.
            raise ConfigError(f"{source}: invalid YAML value: {err}") from err

    def _walk(self, node: yaml.Node, path: KeyPath, merged: bool = False) -> None:
        if merged:
            self.value_lines.setdefault(path, node.start_mark.line + 1)
        else:
            self.value_lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            merges: list[yaml.Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    merges.append(value_node)
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(
                        f"{self.source}, line {line}: {dotted((*path, key))}: duplicate key "
                        f"{key!r} (first given on line {seen[key]})"
                    )
                seen[key] = line
                self.key_lines[(*path, key)] = line
                self._walk(value_node, (*path, key))
            # Keys merged in with `<<: *anchor` point at the anchor's lines; the mapping's
            # own keys win.
            for value_node in merges:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for sub in sources:
                    if not isinstance(sub, yaml.MappingNode):
                        continue
                    for key_node, item in sub.value:
                        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                        if (*path, key) not in self.key_lines:
                            self.key_lines[(*path, key)] = key_node.start_mark.line + 1
                            self._walk(item, (*path, key), merged=True)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.key_lines[(*path, i)] = item.start_mark.line + 1
                self._walk(item, (*path, i), merged=merged)

    def line(self, path: KeyPath, key: bool = False) -> int | None:
        """Line of the key (``key=True``) or the value at ``path``, else of its parent."""
        lines = self.key_lines if key else self.value_lines
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
            lines = self.value_lines
        return self.value_lines.get(())

    def error(self, path: KeyPath, message: str, key: bool = False) -> ConfigError:
        """A ``ConfigError`` "file, line N: key.path: message"."""
        line = self.line(path, key=key)
        where = f", line {line}" if line is not None else ""
        prefix = f"{dotted(path)}: " if path else ""
        return ConfigError(f"{self.source}{where}: {prefix}{message}")


def dotted(path: KeyPath) -> str:
    """A key path as written in messages: ``agents[3].params.alpha``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Pinned:
    """Stands in for a ``Located`` and reports every error at one key path.

    The checks of a value written in place are reused for a value of a sweep list; their
    errors then point at the list item, not at the place the value would have had.
    """

    def __init__(self, doc: Located, path: KeyPath) -> None:
        self.doc = doc
        self.path = path
        self.source = doc.source

    def line(self, path: KeyPath, key: bool = False) -> int | None:
        """The line of the pinned path, whatever ``path`` is."""
        return self.doc.line(self.path)

    def error(self, path: KeyPath, message: str, key: bool = False) -> ConfigError:
        """A ``ConfigError`` at the pinned path, whatever ``path`` is."""
        return self.doc.error(self.path, message)


def read_config_file(path: str | Path) -> str:
    """The text of a config file, refused past ``MAX_CONFIG_BYTES`` without reading it all.

    Raises:
        ConfigError: The file is missing, unreadable, not UTF-8 text, or too large.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err})") from err
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: the config file is larger than {MAX_CONFIG_BYTES:,} bytes (the limit; "
            "a config is a short hand-written file)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: the config file is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from err
