"""deploy/k8s validated against the Kubernetes schemas, and consistent with the portal."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# Variables that are not a Django setting of the same name (DATABASE_URL fills DATABASES).
NOT_SETTINGS = {"DJANGO_CONFIGURATION", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"}


def validate(*paths):
    return subprocess.run(
        [str(VALIDATE), "--strict", *map(str, paths)], capture_output=True, text=True, timeout=120
    )


def documents():
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text())
    }


def container(kind_name):
    return documents()[kind_name]["spec"]["template"]["spec"]["containers"][0]


def test_every_manifest_passes_strict_schema_validation():
    result = validate(*MANIFESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == sum(
        len(list(yaml.safe_load_all(p.read_text()))) for p in MANIFESTS
    )


def test_strict_validation_refuses_an_unknown_field(tmp_path):
    broken = tmp_path / "web.yaml"
    broken.write_text((K8S / "web.yaml").read_text().replace("replicas: 2", "replica: 2"))

    result = validate(broken)

    assert result.returncode != 0
    assert "replica" in result.stdout + result.stderr


def test_kustomization_applies_every_manifest_but_the_secret_example():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]

    assert sorted(listed) == sorted(p.name for p in MANIFESTS if p.name != "secret.example.yaml")


def test_beat_runs_exactly_one_replica_and_never_two_during_a_rollout():
    beat = documents()[("Deployment", "ingest-portal-beat")]["spec"]

    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}


def test_web_runs_the_production_server_config_with_the_readme_probes():
    web = container(("Deployment", "ingest-portal-web"))
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"Kubernetes configuration for the web container:\s+```yaml\n(.*?)```", readme, re.S
    )
    probes = yaml.safe_load(block.group(1))

    assert web["command"][:3] == ["gunicorn", "-c", "boot/gunicorn.conf.py"]
    for name, probe in probes.items():
        assert web[name] == probe, name
    assert web["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert {"requests", "limits"} <= set(web["resources"])


def test_config_names_only_real_settings_and_one_metrics_directory_per_pod():
    docs = documents()
    config = docs[("ConfigMap", "ingest-portal")]["data"]
    secret = docs[("Secret", "ingest-portal")]["stringData"]

    unknown = {name for name in {*config, *secret} - NOT_SETTINGS if not hasattr(settings, name)}
    assert unknown == set()
    for component in ("web", "worker"):
        pod = docs[("Deployment", f"ingest-portal-{component}")]["spec"]["template"]
        mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert "emptyDir" in volumes[mounts[config["PROMETHEUS_MULTIPROC_DIR"]]]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    worker = container(("Deployment", "ingest-portal-worker"))
    assert worker["ports"][0]["containerPort"] == int(config["PORTAL_METRICS_WORKER_PORT"])


@pytest.mark.parametrize("component", ["web", "worker", "beat"])
def test_every_long_running_pod_uses_the_config_and_the_secret(component):
    env_from = container(("Deployment", f"ingest-portal-{component}"))["envFrom"]

    assert env_from == [
        {"configMapRef": {"name": "ingest-portal"}},
        {"secretRef": {"name": "ingest-portal"}},
    ]
