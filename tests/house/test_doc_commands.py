"""Every `edgeswin VERB --flag` a reader is told to run (README, SECURITY.md, the docs, the
generated reference, models/README, benchmarks/RESULTS.md) is a verb of the CLI, and each of
its flags exists: a renamed verb or option must not leave a command in the docs that fails."""

from __future__ import annotations

import argparse
import re

from edgeswin.cli import build_parser
from tests.harness import REPO

DOCS = [REPO / "README.md", REPO / "SECURITY.md", REPO / "models" / "README.md",
        REPO / "benchmarks" / "RESULTS.md", *sorted((REPO / "docs").rglob("*.md"))]
CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.S)
COMMAND = re.compile(r"(?:^|[\s(;&|])(?:python3? -m )?edgeswin (?!edgeswin\b)([a-z][a-z0-9-]*)"
                     r"([^\n;&|#]*)", re.M)


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def commands() -> list[tuple[str, str, list[str]]]:
    """(file, verb, the tokens after it) for every command in a code span or block."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in CODE.finditer(text):
            code = match.group(1) or match.group(2)
            code = "\n".join(line.split(" #")[0] for line in code.splitlines())  # comments
            for verb, rest in COMMAND.findall(code):
                found.append((str(path.relative_to(REPO)), verb, rest.split()))
    return found


def test_the_docs_name_commands_at_all():
    verbs = {verb for _, verb, _ in commands()}
    assert {"run", "check", "demo", "bench", "watch"} <= verbs, verbs


def test_every_command_in_the_docs_is_a_verb_with_its_flags():
    verbs = _verbs(build_parser())
    wrong = []
    for where, verb, rest in commands():
        parser = verbs.get(verb)
        if parser is None:
            wrong.append(f"{where}: edgeswin {verb}: no such verb")
            continue
        nested = _verbs(parser)
        if nested and rest and rest[0] in nested:
            parser, rest = nested[rest[0]], rest[1:]
        elif nested and rest and not rest[0].startswith("-") and rest[0].isidentifier():
            wrong.append(f"{where}: edgeswin {verb} {rest[0]}: no such command")
            continue
        for token in rest:
            flag = token.split("=")[0].rstrip(".,:)]'\"")
            if flag.startswith("--") and len(flag) > 2 and flag not in \
                    parser._option_string_actions:
                wrong.append(f"{where}: edgeswin {verb} {flag}: no such option")
    assert not wrong, "\n".join(wrong)
