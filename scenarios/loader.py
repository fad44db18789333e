"""Scenario files: YAML to `Scenario` models, with errors that point at the file, line and key.

The YAML is composed with PyYAML's SafeLoader into nodes (which know their line and column) and
built into plain data here, keeping the position of every mapping key and sequence item. The
data is then validated by the pydantic models and cross-checked (`scenarios.references`); every
problem becomes a `ScenarioError` such as

    scenarios/zero.yaml:14:7: steps[2].bayar.amount: expecting a whole number of rupiah, got 10.5

Paths use the keys of the file and 0-based list indices. Positions are 1-based. Input is
bounded: file size, nesting depth, number of YAML nodes; anchors, aliases and merge keys are
refused (they would let a small file expand into a large one), and so are duplicate keys.
Timestamps are read as text (the models parse them), so the data is JSON as the schema says.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .model import Scenario
from .references import reference_problems
from .values import TAG_PREFIX, colon_hint, shown

FILE_BYTES_MAX = 256 * 1024
DEPTH_MAX = 24
NODES_MAX = 50_000
ERRORS_MAX = 50
SUFFIXES = (".yaml", ".yml")
FILES_MAX = 1_000

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class ScenarioError(ValueError):
    """A problem of a scenario file, at a line and column (1-based) and a path of keys.

    `load_scenario` raises the first problem of a file; `errors` holds all of them."""

    def __init__(self, file: str, line: int | None, column: int | None, path: str, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
        self.errors: tuple[ScenarioError, ...] = (self,)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


# -- YAML with positions -------------------------------------------------------------------------------


class _Problem(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as text and bounds depth, node count and anchors."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Problem(event.start_mark, "anchors and aliases (&name, *name) are not supported: write the value out")
        self._nodes += 1
        if self._nodes > NODES_MAX:
            raise _Problem(event.start_mark, f"too large: a scenario has at most {NODES_MAX} YAML values")
        self._depth += 1
        try:
            if self._depth > DEPTH_MAX:
                raise _Problem(event.start_mark, f"nested too deeply: at most {DEPTH_MAX} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class _Pos:
    """Where a value starts, and the positions inside it (by key, or by index)."""

    mark: tuple[int, int]
    keys: dict[Any, tuple[tuple[int, int], _Pos]] | None = None
    items: list[_Pos] | None = None


def _mark(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _build(node: yaml.Node, loader: _Loader, problems: list[_Problem]) -> tuple[Any, _Pos]:
    """Plain data and positions from a composed node; duplicate keys and odd tags are problems."""
    pos = _Pos(_mark(node.start_mark))
    if isinstance(node, yaml.ScalarNode):
        try:
            return loader.construct_object(node, deep=True), pos
        except yaml.constructor.ConstructorError as exc:
            problems.append(_Problem(node.start_mark, f"cannot read this value: {exc.problem}"))
            return None, pos
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ_TAG:
            problems.append(_Problem(node.start_mark, f"YAML tag {node.tag} is not supported here"))
        pos.items = []
        values = []
        for item in node.value:
            value, item_pos = _build(item, loader, problems)
            values.append(value)
            pos.items.append(item_pos)
        return values, pos
    if node.tag != _MAP_TAG:
        problems.append(_Problem(node.start_mark, f"YAML tag {node.tag} is not supported here"))
    pos.keys = {}
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = _key(key_node, loader, problems)
        if key is None:
            continue
        value, value_pos = _build(value_node, loader, problems)
        if key in mapping:
            first_line = pos.keys[key][0][0]
            problems.append(_Problem(key_node.start_mark, f"duplicate key {shown(key)} (first at line {first_line})"))
            continue
        mapping[key] = value
        pos.keys[key] = (_mark(key_node.start_mark), value_pos)
    return mapping, pos


def _key(key_node: yaml.Node, loader: _Loader, problems: list[_Problem]) -> Any:
    if key_node.tag == _MERGE_TAG:
        problems.append(_Problem(key_node.start_mark, "merge keys (<<) are not supported: write the keys out"))
        return None
    if not isinstance(key_node, yaml.ScalarNode):
        problems.append(_Problem(key_node.start_mark, "a key must be plain text, not a list or a mapping"))
        return None
    try:
        key = loader.construct_object(key_node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        problems.append(_Problem(key_node.start_mark, f"cannot read this key: {exc.problem}"))
        return None
    if not isinstance(key, (str, int, bool)) or key is None:
        problems.append(_Problem(key_node.start_mark, f"a key must be plain text, got {shown(key)}"))
        return None
    return key


def read_yaml(text: str) -> tuple[Any, _Pos]:
    """Plain data and positions of one YAML document; raises _Problem."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _Problem(None, "the file is empty: a scenario is a mapping with name, problem, cites, network, people, steps")
        problems: list[_Problem] = []
        data, pos = _build(node, loader, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        raise _Problem(mark, f"not valid YAML: {detail}") from None
    except yaml.YAMLError as exc:
        raise _Problem(None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if problems:
        raise _YamlProblems(problems)
    return data, pos


class _YamlProblems(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, problems: list[_Problem]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


# -- from pydantic locations to lines ---------------------------------------------------------------------


def _skipped(part: str | int) -> bool:
    return isinstance(part, str) and (part.startswith(TAG_PREFIX) or part == "[key]")


def locate(pos: _Pos, loc: Sequence[str | int]) -> tuple[int, int, str]:
    """(line, column, path) of a location given as keys and indices of the file.

    A mapping entry is placed at its key, a list item at its start; a location that goes
    further than the file (a missing key) stays at the deepest part that exists."""
    mark = pos.mark
    node: _Pos | None = pos
    parts: list[str | int] = []
    for part in loc:
        if _skipped(part):
            continue
        parts.append(part)
        if node is None:
            continue
        if node.keys is not None and part in node.keys:
            mark, node = node.keys[part]
        elif node.items is not None and isinstance(part, int) and 0 <= part < len(node.items):
            node = node.items[part]
            mark = node.mark
        else:
            node = None
    return mark[0], mark[1], path_text(parts)


def path_text(parts: Iterable[str | int]) -> str:
    """steps[2].bayar.amount"""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part and all(ch.isalnum() or ch in "_-" for ch in str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{shown(part)}]"
    return text


_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list (- item lines)",
    "tuple_type": "a list (- item lines)",
}


def _message(error: dict[str, Any], root: type[BaseModel] | None = None) -> str:
    """One validation error in plain words; an unknown key names the keys `root` (the file's
    model, default Scenario) allows there."""
    kind = error["type"]
    loc = [part for part in error["loc"] if not _skipped(part)]
    if kind == "extra_forbidden":
        allowed = allowed_keys(loc[:-1], root or Scenario)
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {shown(loc[-1])}{hint}"
    if kind == "missing":
        return f"missing required key {shown(loc[-1])}" if loc else "missing required key"
    if kind in _TYPE_WORDS:
        given = error.get("input")
        hint = colon_hint(given) if kind == "string_type" else ""
        return f"expecting {_TYPE_WORDS[kind]}, got {shown(given)}{hint}"
    ctx = error.get("ctx") or {}
    if kind == "too_long":
        return f"at most {_entries(ctx.get('max_length'))}, got {ctx.get('actual_length')}"
    if kind == "too_short":
        return f"at least {_entries(ctx.get('min_length'))}, got {ctx.get('actual_length')}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"expecting {expected}, got {shown(error.get('input'))}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation can hold (Annotated and unions opened)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [inner for arg in typing.get_args(annotation) for inner in _unwrap(arg)]
    return [annotation]


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    return next((info for name, info in model.model_fields.items() if (info.alias or name) == key), None)


def _step_into(annotation: Any, part: str | int) -> list[Any]:
    found = []
    for kind in _unwrap(annotation):
        origin = typing.get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
            info = _field(kind, part)
            if info is not None:
                found.append(info.annotation)
        elif origin in (tuple, list) and isinstance(part, int):
            found.append(typing.get_args(kind)[0])
        elif origin is dict:
            found.append(typing.get_args(kind)[1])
    return found


def allowed_keys(loc: Sequence[str | int], root: type[BaseModel] | None = None) -> list[str]:
    """The keys the format of `root` (default Scenario) allows in the mapping at `loc` (empty
    when it cannot tell)."""
    annotations: list[Any] = [root or Scenario]
    for part in loc:
        annotations = [inner for annotation in annotations for inner in _step_into(annotation, part)]
    models = {kind for annotation in annotations for kind in _unwrap(annotation) if isinstance(kind, type) and issubclass(kind, BaseModel)}
    if len(models) != 1:
        return []
    model = models.pop()
    return [info.alias or name for name, info in model.model_fields.items()]


# -- public API -------------------------------------------------------------------------------------------


@dataclass
class _Collected:
    file: str
    errors: list[ScenarioError] = field(default_factory=list)

    def add(self, line: int | None, column: int | None, path: str, message: str) -> None:
        self.errors.append(ScenarioError(self.file, line, column, path, message))


def scenario_errors(text: str, file: str = "<text>") -> tuple[Scenario | None, list[ScenarioError]]:
    """The scenario of `text` and no errors, or None and every error (at most ERRORS_MAX)."""
    found = _Collected(file)
    if len(text.encode("utf-8")) > FILE_BYTES_MAX:
        found.add(None, None, "", f"too large: a scenario file is at most {FILE_BYTES_MAX} bytes")
        return None, found.errors
    try:
        data, pos = read_yaml(text)
    except _Problem as problem:
        line, column = _mark(problem.mark) if problem.mark is not None else (None, None)
        found.add(line, column, "", problem.message)
        return None, found.errors
    except _YamlProblems as many:
        for problem in many.problems[:ERRORS_MAX]:
            line, column = _mark(problem.mark) if problem.mark is not None else (None, None)
            found.add(line, column, "", problem.message)
        return None, found.errors
    if not isinstance(data, dict):
        found.add(*pos.mark, "", f"a scenario is a mapping with name, problem, cites, network, people, steps; got {shown(data)}")
        return None, found.errors
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        for error in _meaningful(exc.errors(include_url=False))[:ERRORS_MAX]:
            found.add(*locate(pos, error["loc"]), _message(error))
        return None, _sorted(found.errors)
    for problem in reference_problems(scenario)[:ERRORS_MAX]:
        found.add(*locate(pos, problem.loc), problem.message)
    if found.errors:
        return None, _sorted(found.errors)
    return scenario, []


def _meaningful(errors: list[Any]) -> list[Any]:
    """Errors less a list's "too short" that only echoes the failure of its own items."""
    item_locs = [tuple(error["loc"]) for error in errors]

    def echo(error: Any) -> bool:
        loc = tuple(error["loc"])
        return error["type"] == "too_short" and any(len(other) > len(loc) and other[: len(loc)] == loc for other in item_locs)

    return [error for error in errors if not echo(error)]


def _entries(count: object) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _sorted(errors: list[ScenarioError]) -> list[ScenarioError]:
    return sorted(errors, key=lambda e: (e.line or 0, e.column or 0))


def _raise_first(errors: list[ScenarioError]) -> typing.NoReturn:
    first = errors[0]
    first.errors = tuple(errors)
    raise first


def parse_scenario(text: str, file: str = "<text>") -> Scenario:
    """The scenario in `text`; raises ScenarioError (the first problem, `.errors` all of them)."""
    scenario, errors = scenario_errors(text, file)
    if errors:
        _raise_first(errors)
    assert scenario is not None  # noqa: S101 - no errors means a scenario
    return scenario


def _read(path: Path) -> tuple[str | None, list[ScenarioError]]:
    file = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(FILE_BYTES_MAX + 1)
    except OSError as exc:
        return None, [ScenarioError(file, None, None, "", f"cannot read: {exc.strerror or exc}")]
    if len(raw) > FILE_BYTES_MAX:
        return None, [ScenarioError(file, None, None, "", f"too large: a scenario file is at most {FILE_BYTES_MAX} bytes")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        return None, [ScenarioError(file, None, None, "", f"not UTF-8 text (byte {exc.start})")]


def check_file(path: str | Path) -> list[ScenarioError]:
    """Every problem of one scenario file; empty when it is valid."""
    text, errors = _read(Path(path))
    if text is None:
        return errors
    return scenario_errors(text, str(path))[1]


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in the file at `path`; raises ScenarioError."""
    text, errors = _read(Path(path))
    if text is None:
        _raise_first(errors)
    return parse_scenario(text, str(path))


def scenario_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The scenario files named, and the *.yaml / *.yml files of the directories named (sorted)."""
    count = 0
    for given in paths:
        path = Path(given)
        found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()) if path.is_dir() else [path]
        for file in found:
            count += 1
            if count > FILES_MAX:
                return
            yield file
