"""The documentation cannot drift from the code.

* The site builds with `mkdocs build --strict` (mkdocs.yml): no broken link or anchor, every page in
  the navigation, every API reference page resolved; README.md's links name files that exist.
* Every command line in README.md, docs/ (fenced code blocks, tagged or not, and inline code) and the
  Makefile that starts one of the project's tools (`train.py`, `evaluate.py`, `python -m
  keras_disentangle.…`, `python -m tfrecords.…`) names only flags that tool defines, and only values
  its enum flags allow. A renamed flag is reported with its new name.

absl holds one tool's flags at a time, so each tool's flags are collected once, loaded as
tests/test_cli.py runs the tools, and removed again.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest
from absl import flags
from test_cli import REPO_ROOT, _load

from keras_disentangle import cli, configs

# Tokens that end a command on a shell line (`demo_timer run NAME -- COMMAND` wraps a command after `--`).
ENDS = {"|", "||", "&&", ";", "&", "--", ">", ">>", "2>&1", "<", "then", "do", "done"}
# Values that stand for "any value" rather than one the reader types (`...`, `$f`, `RUN`, `F`).
PLACEHOLDER = re.compile(r"^(\.\.\.|…|[A-Z][A-Z0-9_]*)$|[$<>{}]")


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    tool: str  # the module to load: "train.py", "keras_disentangle.tools.bench.__main__", ...
    flags: tuple[str, ...]  # each --flag token as written, without the leading dashes


def _tool(token: str, following: str | None) -> str | None:
    """The tool a token starts (`train.py`, `evaluate.py`, or `-m` followed by a module), else None."""
    name = token.rsplit("/", 1)[-1]
    if name in ("train.py", "evaluate.py"):
        return name
    if token == "-m" and following and re.fullmatch(r"(keras_disentangle|tfrecords)(\.\w+)*", following):
        spec = importlib.util.find_spec(following)
        return f"{following}.__main__" if spec and spec.submodule_search_locations else following
    return None


def _commands_in(line: str, where: str) -> list[Command]:
    """The project's tool commands on one (joined) shell line, each with its flags."""
    tokens = line.replace("`", " ").split()
    commands, tool, found = [], None, []
    for i, token in enumerate(tokens):
        started = _tool(token, tokens[i + 1] if i + 1 < len(tokens) else None)
        if started or token in ENDS or token.startswith("#") or tool is None:
            if tool:
                commands.append(Command(where, tool, tuple(found)))
            tool, found = (started, []) if started else (None, [])
            continue
        flag = token.strip("[](),;'\"")
        if flag.startswith("--") and len(flag) > 2:
            found.append(flag[2:])
        if token.endswith(";"):
            commands.append(Command(where, tool, tuple(found)))
            tool, found = None, []
    if tool:
        commands.append(Command(where, tool, tuple(found)))
    return commands


def _shell_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined."""
    joined, start, parts = [], None, []
    for number, line in enumerate(text.split("\n"), 1):
        start = number if start is None else start
        parts.append(line.rstrip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            joined.append((start, " ".join(parts)))
            start, parts = None, []
    return joined


def _markdown_lines(text: str) -> list[tuple[int, str]]:
    """Every fenced code block's lines, and every inline code span (which may wrap) outside them."""
    lines, fence, prose = [], None, []
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            if fence is None:
                fence = []
            else:
                block = "\n".join(text for _, text in fence)
                lines += [(fence[0][0] + n - 1, joined) for n, joined in _shell_lines(block)] if fence else []
                fence = None
            continue
        (fence if fence is not None else prose).append((number, line))
    # Inline spans: joined over line breaks, numbered by the line they start on.
    text_out = "\n".join(line for _, line in prose)
    numbers = [number for number, _ in prose]
    for match in re.finditer(r"`([^`]+)`", text_out):
        lines.append((numbers[text_out.count("\n", 0, match.start())], match.group(1).replace("\n", " ")))
    return lines


def _documented_commands() -> list[Command]:
    sources = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
    commands = []
    for path in sources:
        for number, line in _markdown_lines(path.read_text(encoding="utf-8")):
            commands += _commands_in(line, f"{path.relative_to(REPO_ROOT)}:{number}")
    makefile = REPO_ROOT / "Makefile"
    for number, line in _shell_lines(makefile.read_text(encoding="utf-8")):
        commands += _commands_in(line, f"Makefile:{number}")
    return commands


COMMANDS = _documented_commands()


@dataclass(frozen=True)
class _Declared:
    """A flag read from a tool's source (what `flags.Flag` offers the check)."""

    boolean: bool
    parser: object


def _declared_flags(tool: str) -> dict[str, _Declared]:
    """The flags in `tool`'s `flags.DEFINE_*("name", default, [choices], ...)`, `cli.define_enum("name", default,
    configs.Kind, ...)` and `cli.define_shared("name", ...)` calls, read from its source: for a tool this venv
    cannot import (`bench.versus_torch` imports torch, which only its own venv has)."""
    source = pathlib.Path(importlib.util.find_spec(tool).origin).read_text(encoding="utf-8")
    tree = ast.parse(source)
    found = {}

    def declared(kind: str, choices) -> _Declared:
        return _Declared(kind in ("bool", "boolean"), type("Parser", (), {"enum_values": choices})())

    for call in ast.walk(tree):
        kind = getattr(call, "func", None)
        if not (isinstance(call, ast.Call) and isinstance(kind, ast.Attribute)
                and call.args and isinstance(call.args[0], ast.Constant)):
            continue
        if kind.attr == "define_shared":
            # `choices=[configs.Kind.MEMBER, ...]` narrows a shared choice flag.
            narrowed = next(([getattr(getattr(configs, e.value.attr), e.attr).value for e in k.value.elts]
                             for k in call.keywords if k.arg == "choices"), None)
            for name in (arg.value for arg in call.args if isinstance(arg, ast.Constant)):
                shared = cli.SHARED[name].kind
                found[name] = declared(shared, None) if isinstance(shared, str) else declared(
                    "enum", narrowed or [member.value for member in shared])
        elif kind.attr == "define_enum" and isinstance(call.args[2], ast.Attribute):
            found[call.args[0].value] = declared("enum", [m.value for m in getattr(configs, call.args[2].attr)])
        elif kind.attr.startswith("DEFINE_"):
            choices = call.args[2] if kind.attr == "DEFINE_enum" and len(call.args) > 2 else None
            values = [e.value for e in choices.elts] if isinstance(choices, (ast.List, ast.Tuple)) else None
            found[call.args[0].value] = declared(kind.attr.removeprefix("DEFINE_"), values)
    return found


@functools.cache
def _flags_of(tool: str) -> tuple[dict[str, flags.Flag], dict[str, str]]:
    """The flags `tool` defines (name -> absl Flag) and its renamed ones (old -> new), as it runs."""
    try:
        module = _load(tool)
    except ModuleNotFoundError:
        return _declared_flags(tool), {}
    defined = set(flags.FLAGS)
    cli._RENAMED.clear()
    try:
        if hasattr(module, "define_flags"):  # a replaced command has none (metrics.sampling)
            module.define_flags()
        return {name: flags.FLAGS[name] for name in flags.FLAGS}, dict(cli._RENAMED)
    finally:
        cli._RENAMED.clear()
        for name in set(flags.FLAGS) - defined:
            delattr(flags.FLAGS, name)


def _problem(token: str, defined: dict[str, flags.Flag], renamed: dict[str, str]) -> str | None:
    """What is wrong with `--token` for a tool with these flags, or None."""
    name, _, value = token.partition("=")
    if not re.fullmatch(r"\w+", name):
        return None  # a placeholder (`--<flag>_keypoints`, `--$up`)
    if name in renamed:
        return f"--{name} was renamed: use {renamed[name]}"
    if name not in defined:
        boolean = name.startswith("no") and name[2:] in defined and defined[name[2:]].boolean
        return None if boolean and not value else f"--{name} is not a flag of this tool"
    # DEFINE_enum's parser lists enum_values; cli.define_enum's (absl's enum-class parser) member_names.
    parser = defined[name].parser
    allowed = getattr(parser, "enum_values", None) or getattr(parser, "member_names", None)
    if allowed and value and not PLACEHOLDER.search(value):
        bad = [v for v in value.split("|") if v not in allowed]
        if bad:
            return f"--{name}={'|'.join(bad)}: allowed are {', '.join(allowed)}"
    return None


def test_every_documented_command_names_a_tool():
    assert len(COMMANDS) > 100, "the command-line parser found too few commands in the documentation"
    missing = sorted({c.tool for c in COMMANDS if c.tool.endswith(".py") and not (REPO_ROOT / c.tool).exists()})
    unloadable = sorted({c.tool for c in COMMANDS if not c.tool.endswith(".py")
                         and importlib.util.find_spec(c.tool) is None})
    assert not missing and not unloadable, f"documented tools that do not exist: {missing + unloadable}"


@pytest.mark.parametrize("tool", sorted({c.tool for c in COMMANDS}))
def test_documented_flags_are_defined_by_their_tool(tool):
    defined, renamed = _flags_of(tool)
    problems = [f"{c.where}: {tool.removesuffix('.__main__')}: {message}"
                for c in COMMANDS if c.tool == tool
                for token in c.flags if (message := _problem(token, defined, renamed))]
    assert not problems, "\n".join(problems)


def test_readme_links_resolve():
    """README.md is read on the forge, outside the site: each relative link names a file that exists."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert targets, "README.md links to no page"
    missing = [target for target in targets if not (REPO_ROOT / target).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_site_builds_strict(tmp_path):
    """mkdocs.yml's validation turns a broken link or anchor and a page outside the navigation into
    warnings, which --strict makes fatal."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
