"""Every log line is JSON: timestamp (ISO 8601, UTC), level, logger, message, extra fields."""

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from app.logs import JsonFormatter
from tests.factories import Creds, send_body
from tests.ops.support import CLEAN_ENV, ROOT


def record(name: str, message: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(
        name, logging.WARNING, __file__, 1, message, args, None, extra=extra
    )


def test_a_line_has_the_fields() -> None:
    line = json.loads(JsonFormatter().format(record("herald.x", "sent %d", 3, requestId="r1")))
    assert line["level"] == "warning"
    assert line["logger"] == "herald.x"
    assert line["message"] == "sent 3"
    assert line["requestId"] == "r1"
    stamp = datetime.fromisoformat(line["timestamp"])
    assert line["timestamp"].endswith("Z")
    assert stamp.utcoffset() is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_an_exception_stays_on_its_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        entry = logging.getLogger("herald.x").makeRecord(
            "herald.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    text = JsonFormatter().format(entry)
    assert "\n" not in text
    line = json.loads(text)
    assert "ValueError: boom" in line["exception"]
    assert line["level"] == "error"


# What `herald` does at start: every library logger and Python warnings, through one handler.
EMIT = """
import logging, warnings
from app import logs
logs.configure("info")
logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://127.0.0.1:1")
logging.getLogger("alembic.runtime.migration").info("Running upgrade a -> b, step")
logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
logging.getLogger("herald.worker").info("worker: consuming the queue")
logging.getLogger("herald.worker").debug("not at info")
warnings.warn("careful")
raise RuntimeError("unhandled at the top")
"""


def test_every_logger_writes_json() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMIT], env=CLEAN_ENV, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(entry["logger"], entry["level"]) for entry in lines] == [
        ("uvicorn.error", "info"),
        ("alembic.runtime.migration", "info"),
        ("herald.worker", "info"),
        ("py.warnings", "warning"),
        ("herald", "critical"),
    ]
    assert lines[0]["message"] == "Uvicorn running on http://127.0.0.1:1"
    assert lines[1]["message"] == "Running upgrade a -> b, step"
    assert "careful" in lines[3]["message"]
    assert "RuntimeError: unhandled at the top" in lines[4]["exception"]
    for entry in lines:
        assert datetime.fromisoformat(entry["timestamp"]).utcoffset() is not None


async def test_the_send_access_line_carries_its_request_id(
    client: httpx.AsyncClient, creds: Creds, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="herald.access")
    sent = await client.post(
        "/v3/notifications",
        json=send_body("alice"),
        headers={**creds.backend(), "X-Request-ID": "trace-7"},
    )
    assert sent.status_code == 202, sent.text
    read = await client.get("/v3/notifications", headers=creds.user("alice"))
    assert read.status_code == 200
    lines = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "herald.access"
    ]
    assert len(lines) == 2
    send_line, read_line = lines
    assert send_line["requestId"] == sent.json()["requestId"]
    assert send_line["xRequestId"] == "trace-7"
    assert send_line["message"] == "POST /v3/notifications 202"
    assert send_line["status"] == 202
    # Only a send has a requestId.
    assert "requestId" not in read_line
    assert read_line["path"] == "/v3/notifications"
