"""deploy/k8s: kustomize renders it, kubernetes-validate --strict accepts every object, and the pod
spec keeps its probes, drain pause and security settings. There is no cluster here: this checks
the manifests against the API schemas and against the app, not their behaviour in a cluster."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.settings import Settings
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl")
VALIDATE = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
# The oldest Kubernetes still commonly run and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def kustomize(directory: Path) -> str:
    done = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(kustomize(K8S), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def objects(rendered: Path) -> dict[str, dict]:
    docs = [doc for doc in yaml.safe_load_all(rendered.read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return by_kind


@pytest.fixture(scope="module")
def pod(objects: dict[str, dict]) -> dict:
    return objects["Deployment"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod: dict) -> dict:
    (only,) = pod["containers"]
    return only


def test_kustomize_renders_the_four_objects(objects):
    assert sorted(objects) == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    assert objects["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert objects["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    assert {obj["metadata"]["name"] for obj in objects.values()} == {"namegen"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_validate_strict_accepts_every_rendered_object(rendered, objects, version):
    done = subprocess.run(
        [VALIDATE, "--strict", "--kubernetes-version", version, str(rendered)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.findall(r"passed for resource (\w+)/namegen", done.stdout + done.stderr)
    assert sorted(passed) == sorted(kind.lower() for kind in objects)


def test_strict_validation_would_catch_a_misspelled_field(rendered, tmp_path):
    """Guards the guard: without --strict an unknown field passes, with it the object fails."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(rendered.read_text(encoding="utf-8").replace("timeoutSeconds:", "timeoutSecond:"))
    strict = subprocess.run([VALIDATE, "--strict", str(bad)], capture_output=True, text=True, timeout=120)
    assert strict.returncode != 0 and "timeoutSecond" in strict.stdout + strict.stderr
    lax = subprocess.run([VALIDATE, str(bad)], capture_output=True, text=True, timeout=120)
    assert lax.returncode == 0


def test_rolling_update_keeps_every_replica_until_its_successor_is_ready(objects):
    spec = objects["Deployment"]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["strategy"]["rollingUpdate"]["maxSurge"] >= 1


def test_probes_all_ask_health_on_the_served_port(container):
    env = {e["name"]: e.get("value") for e in container["env"]}
    (port,) = container["ports"]
    assert str(port["containerPort"]) == env["NAMEGEN_PORT"] and env["NAMEGEN_HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health" and get["port"] in (port["name"], port["containerPort"]), probe
    # The startup probe, not the liveness probe, waits for the model to load.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_the_pod_leaves_the_endpoints_before_it_stops_accepting(pod, container):
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert pause >= 5
    # The grace period counts from deletion: the pause, then the app's drain after SIGTERM.
    assert pod["terminationGracePeriodSeconds"] >= pause + 15


def test_pod_runs_locked_down(pod, container):
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    dockerfile_user = re.search(r"^USER (\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)[1]
    assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]


def test_resources_one_blas_thread_and_workers_from_the_cpu_request(container):
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}, "no CPU limit (see deployment.yaml)"

    def mib(quantity: str) -> int:
        value, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
        return int(value) * (1024 if unit == "Gi" else 1)

    # Measured RSS after load: 356-360 MiB steady, 365-412 MiB peak (see deployment.yaml).
    assert 350 <= mib(resources["requests"]["memory"]) < mib(resources["limits"]["memory"])
    assert mib(resources["limits"]["memory"]) >= 400
    env = {e["name"]: e for e in container["env"]}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert env[name]["value"] == "1", name
    field = env["NAMEGEN_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert field == {"containerName": container["name"], "resource": "requests.cpu", "divisor": "1"}


def test_every_namegen_variable_is_a_setting_the_app_accepts(container):
    known = {f"NAMEGEN_{name.upper()}" for name in Settings.model_fields}
    names = {e["name"] for e in container["env"] if e["name"].startswith("NAMEGEN_")}
    assert names <= known
    values = {e["name"]: e.get("value", "1") for e in container["env"] if e["name"] in names}
    Settings(**{k.removeprefix("NAMEGEN_").lower(): v for k, v in values.items()})


def test_service_hpa_and_pdb_select_the_deployments_pods(objects, container):
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = objects["Service"]["spec"]["ports"]
    assert port["targetPort"] in (container["ports"][0]["name"], container["ports"][0]["containerPort"])
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", objects["Deployment"]["metadata"]["name"])
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"


def test_an_overlay_points_the_image_at_a_registry(tmp_path):
    """The README's recipe: an overlay whose `images:` names the registry and tag."""
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(K8S, tmp_path)}\n"  # kustomize wants it relative
        "images:\n  - name: namegen\n    newName: registry.example.com/team/namegen\n    newTag: 1.2.3\n",
        encoding="utf-8",
    )
    docs = [doc for doc in yaml.safe_load_all(kustomize(tmp_path)) if doc]
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/team/namegen:1.2.3"
