"""The Docker image's install steps without Docker: the same build context copied as the
Dockerfile copies it, the same `pip install -c constraints.txt .` into a fresh venv, then what the
container runs: `db upgrade`, `serve` answering /readyz, and `teams package` (whose manifest
template must ship inside the package, since the image has no checkout)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.servers import REPO, free_port

pytestmark = pytest.mark.slow

DOCKERFILE = REPO / "deploy" / "Dockerfile"


def _copied_paths() -> list[str]:
    """What the Dockerfile's build stage COPYs from the context (the repository root)."""
    found: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        m = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if m:
            found += m.group(1).split()
    return found


def test_the_dockerfile_copies_what_the_package_needs() -> None:
    assert {"pyproject.toml", "constraints.txt", "README.md", "bot", "adapters", "sync", "manifest"} <= set(
        _copied_paths()
    )


def test_the_image_install_steps_work_from_a_fresh_venv(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in _copied_paths():
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, context / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / name)
    venv = tmp_path / "opt-clinicbot"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", "--no-cache-dir",
         "-c", "constraints.txt", "."],
        cwd=context, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.rmtree(context)  # the image has no checkout: nothing may be read from the sources

    work = tmp_path / "var-lib-clinicbot"
    work.mkdir()
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "HOME": str(work), "CLINICBOT_HOST": "127.0.0.1",
        "CLINICBOT_PORT": str(port), "CLINICBOT_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1",
        "MicrosoftAppId": "3f2a4b6c-8d0e-4f1a-9b2c-3d4e5f6a7b8c", "MicrosoftAppPassword": "not-a-real-secret",
        "CLINICBOT_PUBLIC_URL": "https://clinic.example.net",
    }  # fmt: skip
    clinicbot = str(venv / "bin" / "clinicbot")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([clinicbot, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120,
                              check=False)  # fmt: skip

    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    packaged = run("teams", "package", "-o", str(work / "clinicbot-teams.zip"))
    assert packaged.returncode == 0, packaged.stderr
    with zipfile.ZipFile(work / "clinicbot-teams.zip") as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert "3f2a4b6c-8d0e-4f1a-9b2c-3d4e5f6a7b8c" in zf.read("manifest.json").decode()

    server = subprocess.Popen([clinicbot, "serve"], cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the installed server did not become ready"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
