"""`synthdata tokens create|list|revoke` and `serve --limit` parsing."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from synthdata.cli import _expiry, _is_loopback, _service_limits, app
from synthdata.errors import ConfigError

runner = CliRunner()


def test_tokens_create_list_revoke(tmp_path):
    data = ["--data-dir", str(tmp_path / "d")]
    made = runner.invoke(app, ["tokens", "create", "--tenant", "ward7", "--scopes",
                               "read,submit", "--expires", "30d", *data])
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    token_id = token.split("_")[1]
    listed = runner.invoke(app, ["tokens", "list", *data])
    assert token_id in listed.output and "read,submit" in listed.output
    assert token not in listed.output  # never the secret
    assert runner.invoke(app, ["tokens", "revoke", token_id, *data]).exit_code == 0
    again = runner.invoke(app, ["tokens", "revoke", token_id, *data])
    assert again.exit_code == 1 and "no active token with id" in str(again.exception)
    bad = runner.invoke(app, ["tokens", "create", "--tenant", "x", "--scopes", "root", *data])
    assert "unknown scope(s) ['root']" in str(bad.exception)


def test_expiry_parsing():
    assert abs(_expiry("2h") - (time.time() + 7200)) < 5
    assert _expiry("2030-01-01") == pytest.approx(1893456000.0)
    with pytest.raises(ConfigError, match="neither a duration"):
        _expiry("soon")


def test_serve_limits_and_loopback():
    assert _service_limits(["max_sample_rows=2000", "job_time_limit_s=60"]) == {
        "max_sample_rows": 2000, "job_time_limit_s": 60.0}
    with pytest.raises(ConfigError, match="use KEY=VALUE with KEY one of"):
        _service_limits(["data_dir=/etc"])
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and not _is_loopback("0.0.0.0")
