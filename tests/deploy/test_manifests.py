"""The deploy files as CI checks them: the Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate, strict), the compose file's shape, and `docker compose config` where the
docker compose plugin is installed."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.servers import REPO

K8S = REPO / "deploy" / "k8s" / "clinicbot.yaml"
COMPOSE = REPO / "deploy" / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
K8S_VERSION = "1.30"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(K8S.read_text()) if d]


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_kubernetes_resource_matches_the_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_broken_resource() -> None:
    deployment = copy.deepcopy(next(d for d in _docs() if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_every_pod_migrates_first_and_shares_one_secret() -> None:
    kinds = [d["kind"] for d in _docs()]
    assert "Job" not in kinds, "a fixed-name Job cannot be applied again for the next release"
    [deployment] = [d for d in _docs() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    assert migrate["command"] == ["clinicbot", "db", "upgrade"]
    containers = [*pod["initContainers"], *pod["containers"]]
    assert {c["image"] for c in containers} == {migrate["image"]}, "one image for migration and serving"
    assert not migrate["image"].endswith(":latest")
    assert all(c["envFrom"] == [{"secretRef": {"name": "clinicbot"}}] for c in containers)
    assert "CLINICBOT_SECRET_KEY" in K8S.read_text() and "PGPASSWORD" in K8S.read_text()


def test_compose_shares_one_key_and_keeps_the_password_out_of_the_url() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    bots = {name: svc for name, svc in compose["services"].items() if "build" in svc}
    assert set(bots) == {"migrate", "bot"}
    envs = [svc["environment"] for svc in bots.values()]
    assert envs[0] == envs[1]
    env = envs[0]
    assert env["CLINICBOT_SECRET_KEY"].startswith("${CLINICBOT_SECRET_KEY:?")
    url = urlsplit(env["CLINICBOT_DATABASE_URL"])
    assert url.password is None and "$" not in env["CLINICBOT_DATABASE_URL"]
    assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD")
    assert all(svc["env_file"] == [".env"] for svc in bots.values())


def test_the_env_example_defines_every_variable_compose_needs() -> None:
    needed = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    defined = {ln.split("=", 1)[0] for ln in ENV_EXAMPLE.read_text().splitlines() if "=" in ln and not ln.startswith("#")}
    assert needed <= defined, needed - defined


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="the docker compose plugin is not installed")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy2(COMPOSE, deploy / "compose.yaml")
    # deploy/.env as the README has the operator make it: the example with a key filled in.
    (deploy / ".env").write_text(ENV_EXAMPLE.read_text().replace("CLINICBOT_SECRET_KEY=", "CLINICBOT_SECRET_KEY=k"))
    checked = subprocess.run(
        ["docker", "compose", "-f", str(deploy / "compose.yaml"), "config", "-q"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
