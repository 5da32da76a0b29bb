"""A newcomer's path, as the README gives it: `db upgrade`, `demo`, `serve` with no chat platform
configured (which prints the playground command), then `today` from a Teams client shows the
demo day with working buttons. The Teams client here is the test, speaking the playground's
protocol: unauthenticated activities whose replies go to a loopback connector."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.bot_connector import FakeBotConnector
from tests.servers import clean_env, free_port, run_cli


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    with FakeBotConnector(app_id="", app_password=None) as fake:
        yield fake


def _serve(cwd: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"], cwd=cwd, env=clean_env({"CLINICBOT_PORT": str(port)}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_until_up(proc: subprocess.Popen[str], base: str) -> list[str]:
    """The server's output up to the moment /healthz answers."""
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError("server exited:\n" + "".join(lines))
        lines.append(line)
        if "then type" in line:
            break
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return lines
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not come up:\n" + "".join(lines))


def _message(service_url: str, text: str) -> dict[str, Any]:
    """What the playground posts for a typed message (no token: Teams authentication is off)."""
    return {
        "type": "message", "id": "m1", "text": text, "channelId": "msteams", "serviceUrl": service_url,
        "from": {"id": "user-id-0", "name": "Alex Wilber", "aadObjectId": "00000000-0000-0000-0000-0000000000a1"},
        "conversation": {"id": "personal-chat-id", "conversationType": "personal", "tenantId": "tenant-id"},
        "recipient": {"id": "00000000-0000-0000-0000-00000000000b", "name": "clinicbot"},
        "channelData": {"tenant": {"id": "tenant-id"}}, "locale": "en-US",
    }  # fmt: skip


def test_demo_then_serve_then_today_shows_the_demo_day(tmp_path: Path, connector: FakeBotConnector) -> None:
    assert run_cli(["db", "upgrade"], tmp_path).returncode == 0
    made = run_cli(["demo", "--tz", "Europe/London", "--json"], tmp_path)
    assert made.returncode == 0, made.stderr
    demo = json.loads(made.stdout)
    assert demo["practitioners"] == ["Dr Ada Demo", "Dr Ben Sample"] and len(demo["appointments"]) == 8
    again = run_cli(["demo", "--json"], tmp_path)
    assert json.loads(again.stdout)["appointments"] == demo["appointments"], "a second run adds nothing"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port)
    try:
        output = "".join(_wait_until_up(proc, base))
        assert f"agentsplayground -e {base}/api/messages -c msteams" in output, output
        reply = httpx.post(base + "/api/messages", json=_message(connector.service_url, "today"), timeout=30)
        assert reply.status_code in (200, 201), reply.text
        [answer] = connector.recorded.activities("personal-chat-id")
        card = answer["attachments"][0]["content"]
        text = json.dumps(card)
        assert "Sample Client A" in text and "Dr Ben Sample" in text
        buttons = [a for a in _walk(card) if a.get("type") == "Action.Execute"]
        assert {b["verb"] for b in buttons} >= {"reschedule", "cancel", "details"}
        details = next(b for b in buttons if b["verb"] == "details")
        invoke = _message(connector.service_url, "")
        invoke.update(type="invoke", name="adaptiveCard/action",
                      value={"action": {"type": "Action.Execute", "verb": "details", "data": details["data"]}})
        pressed = httpx.post(base + "/api/messages", json=invoke, timeout=30)
        assert pressed.status_code == 200 and "Sample Client" in pressed.text, pressed.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_try_out_adds_the_demo_only_to_a_fresh_local_install(tmp_path: Path) -> None:
    assert run_cli(["db", "upgrade"], tmp_path).returncode == 0
    configured = run_cli(["demo", "--try-out", "--json"], tmp_path, {"SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "b"})
    assert configured.returncode == 0 and configured.stdout == "", "a configured chat platform gets no demo"
    made = run_cli(["demo", "--try-out", "--json"], tmp_path)
    assert made.returncode == 0 and json.loads(made.stdout)["practice"] == "Demo Clinic"
    assert run_cli(["demo", "--try-out"], tmp_path).stdout == "", "once only"

    in_use = tmp_path / "in-use"
    in_use.mkdir()
    run_cli(["db", "upgrade"], in_use)
    run_cli(["practice", "create", "Lee Clinic", "--tz", "UTC"], in_use)
    assert run_cli(["demo", "--try-out"], in_use).stdout == ""
    listed = json.loads(run_cli(["practice", "list", "--json"], in_use).stdout)
    assert [p["name"] for p in listed] == ["Lee Clinic"]
