"""`chroma-operator backup` argument handling (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from chroma_operator.cli import app
from chroma_operator.data.cli import parse_headers

runner = CliRunner()


def test_headers_parse_and_bad_ones_are_usage_errors() -> None:
    assert parse_headers(["X-Chroma-Token: s3cret", "Authorization:Bearer x"]) == {
        "X-Chroma-Token": "s3cret",
        "Authorization": "Bearer x",
    }
    with pytest.raises(typer.BadParameter):
        parse_headers(["no-colon"])
    out = runner.invoke(
        app, ["backup", "create", "--url", "http://x", "--to", "/tmp", "--header", "bad"]
    )
    assert out.exit_code == 2 and "Name: value" in out.output


def test_list_and_verify_of_nothing(tmp_path: Path) -> None:
    out = runner.invoke(app, ["backup", "list", str(tmp_path)])
    assert out.exit_code == 0 and "no backups" in out.stdout
    out = runner.invoke(app, ["backup", "verify", str(tmp_path / "nope")])
    assert out.exit_code == 1 and "no manifest.json" in out.stderr and "Traceback" not in out.output
