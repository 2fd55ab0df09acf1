"""README's Troubleshooting lists every refusal the webhooks and the CLI can give, and only
those: the messages are collected from the code, where it refuses, so neither can drift.

Where a refusal is made: the first argument of `CliError`, `Failure`, `_not_found`, `_deny`
and `Decision(message=...)`; what is appended to (or extended into) a list of `errors` or
`problems`; what the functions that say why something is wrong return (`key_error`,
`value_error`, `user_error`, `split_ref`, `refusal`, `_unreachable`). A message's variable
parts are `<...>` in the README; module constants are spelled out, as the user reads them.
The reasons a secret or a share is not Ready are the values of the states and the reasons of
`rules.status`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from types import ModuleType

from usersecrets.rules import desired, status
from usersecrets_dev.controlplane import REPO

MODULES = (
    # The pod webhook.
    "usersecrets.rules.references",
    "usersecrets.rules.injection",
    "usersecrets.rules.admission",
    # The UserSecret and SecretGrant webhook.
    "usersecrets.rules.authoring",
    "usersecrets.webhook.validation",
    # The CLI.
    "usersecrets.cli.main",
    "usersecrets.user.actions",
    "usersecrets.user.errors",
    "usersecrets.user.space",
)
CALLS = {"CliError", "Failure", "_not_found", "_deny", "Decision"}
LISTS = {"errors", "problems"}
RETURNS = {"key_error", "value_error", "user_error", "split_ref", "refusal", "_unreachable"}
READY = {"Materialized", "Granted"}
#: What a variable part of a message becomes, in the code and in the README.
PART = "<>"


def _text(node: ast.expr, module: ModuleType) -> str | None:
    """The message an expression makes, with its variable parts as PART; None if it makes
    none of its own (a name, a call)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        text = ""
        for value in node.values:
            if isinstance(value, ast.Constant):
                text += str(value.value)
                continue
            assert isinstance(value, ast.FormattedValue)
            name = value.value.id if isinstance(value.value, ast.Name) else ""
            constant = (
                getattr(module, name, None) if name.isupper() or name.startswith("_") else None
            )
            plain = value.format_spec is None and value.conversion == -1
            if plain and isinstance(constant, str | int) and not isinstance(constant, bool):
                text += str(constant)
            else:
                text += PART
        return text
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return (_text(node.left, module) or PART) + (_text(node.right, module) or PART)
    return None


def _each(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.List | ast.Tuple):
        return list(node.elts)
    if isinstance(node, ast.GeneratorExp | ast.ListComp):
        return [node.elt]
    return [node]


def _refusals(module: ModuleType) -> list[ast.expr]:
    found: list[ast.expr] = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Call):
            call = node.func
            name = call.id if isinstance(call, ast.Name) else getattr(call, "attr", "")
            if name in CALLS:
                found += _each(node.args[0]) if node.args else []
                found += [k.value for k in node.keywords if k.arg == "message"]
            into = call.value if isinstance(call, ast.Attribute) else None
            if name in ("append", "extend") and isinstance(into, ast.Name) and into.id in LISTS:
                found += _each(node.args[0])
        if isinstance(node, ast.FunctionDef) and node.name in RETURNS:
            found += [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value]
    return found


def canonical(message: str) -> str:
    return re.sub(f"(?:{re.escape(PART)})+", PART, message)


def code_messages() -> set[str]:
    messages = set()
    for name in MODULES:
        module = importlib.import_module(name)
        for node in _refusals(module):
            text = _text(node, module)
            if text is not None and re.search("[A-Za-z]", text.replace(PART, "")):
                messages.add(canonical(text))
    return messages


def readme_section() -> list[str]:
    """The first cells of the Troubleshooting section's tables, as written."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


def test_the_collector_finds_the_refusals_of_every_kind() -> None:
    messages = code_messages()
    for known in (
        "Missing secrets: <>",  # a concatenation
        "Secret '<>' is not shared with user '<>'",  # a generator, extended into a list
        "Invalid URI scheme: '<>' != 'secret'",  # a return, a constant spelled out
        "The request names no user",  # a Decision's message
        "Secret '<>' not found",  # through _not_found
        "Annotation '<>' has more than 256 entries",
    ):
        assert known in messages


def test_every_refusal_is_in_the_readme_and_nothing_else() -> None:
    written = {canonical(re.sub(r"<[^<>]*>", PART, cell)) for cell in readme_section()}
    written -= not_ready_reasons()
    assert sorted(code_messages() - written) == [], "refusals missing from README"
    assert sorted(written - code_messages()) == [], "README lists refusals the code never gives"


def not_ready_reasons() -> set[str]:
    states = {state.value for state in (*desired.SecretState, *desired.GrantState)}
    reasons = {
        value
        for value in vars(status).values()
        if isinstance(value, str) and re.fullmatch(r"(?:[A-Z][a-z]+){2,}", value)
    }
    return (states | reasons) - READY


def test_every_reason_for_not_being_ready_is_in_the_readme() -> None:
    assert not_ready_reasons() >= {"CopyFailed", "NameCollision", "SourceMissing"}
    reasons = {cell for cell in readme_section() if " " not in cell and cell[:1].isupper()}
    assert reasons == not_ready_reasons()
