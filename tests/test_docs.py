"""Every CLI command has help text and is documented in the README or docs/ (sqlite-utils style)."""

from __future__ import annotations

from pathlib import Path

from taskexec.cli.main import all_commands

ROOT = Path(__file__).resolve().parents[1]


def all_docs() -> str:
    texts = [ROOT.joinpath("README.md").read_text()]
    texts += [p.read_text() for p in sorted(ROOT.joinpath("docs").glob("*.md"))]
    return "\n".join(texts)


def test_every_command_is_documented():
    docs = all_docs()
    missing = [name for name in all_commands() if f"taskexec {name}" not in docs]
    assert not missing, f"commands with no documentation: {missing}"


def test_every_command_has_help():
    for name, command in all_commands().items():
        assert command.help and len(command.help.split()) >= 5, name
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option" and not getattr(
                param, "hidden", False
            ):
                assert getattr(param, "help", None), f"taskexec {name} {param.opts[0]} has no help"


def test_readme_has_the_two_commands():
    readme = ROOT.joinpath("README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in ROOT.joinpath(".ci", "run").read_text()
