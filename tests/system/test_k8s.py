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


IMAGE = "registry.example.com/team/namegen:0.1.0"


def configured(tmp: Path, image: str | None = IMAGE) -> Path:
    """A copy of deploy/k8s with image.env written as the README says (none when `image` is None)."""
    copy = tmp / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("image.env"))
    if image is not None:
        (copy / "image.env").write_text(f"IMAGE={image}\n", encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("k8s")
    path = tmp / "rendered.yaml"
    path.write_text(kustomize(configured(tmp)), encoding="utf-8")
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


@pytest.fixture(scope="module")
def settings_env(objects: dict[str, dict], container: dict) -> dict[str, str]:
    """The pod's NAMEGEN_* settings: the ConfigMap it takes its environment from."""
    (source,) = container["envFrom"]
    config = objects["ConfigMap"]
    assert source["configMapRef"]["name"] == config["metadata"]["name"]
    return config["data"]


def test_kustomize_renders_the_five_objects(objects):
    kinds = ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    assert sorted(objects) == kinds
    assert objects["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert objects["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    assert {obj["metadata"]["name"] for obj in objects.values()} == {
        "namegen",
        objects["ConfigMap"]["metadata"]["name"],
    }
    assert objects["ConfigMap"]["metadata"]["name"].startswith(
        "namegen-settings-"
    )  # hashed: edits roll the pods


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


def test_probes_all_ask_health_on_the_probe_port(container, settings_env):
    """The probes use NAMEGEN_PROBE_PORT, which an idle crowd on the served port cannot fill."""
    env = settings_env
    ports = {p["name"]: p for p in container["ports"]}
    assert str(ports["http"]["containerPort"]) == env["NAMEGEN_PORT"] and env["NAMEGEN_HOST"] == "0.0.0.0"
    assert str(ports["probe"]["containerPort"]) == env["NAMEGEN_PROBE_PORT"] != env["NAMEGEN_PORT"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health" and get["port"] in ("probe", ports["probe"]["containerPort"]), probe
    # The startup probe, not the liveness probe, waits for the model to load.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_the_pod_leaves_the_endpoints_before_it_stops_accepting(pod, container, settings_env):
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert pause >= 5
    # The grace period counts from deletion: the pause, then the app's drain after SIGTERM, bounded by
    # its shutdown timeout, with a margin before SIGKILL.
    drain = float(settings_env["NAMEGEN_SHUTDOWN_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] >= pause + drain + 5
    # The worst backlog the queue admits (heavy jobs of about 0.2 s, measured by bench.drain) fits the
    # drain twice over.
    assert int(settings_env["NAMEGEN_MAX_QUEUE"]) * 0.2 * 2 <= drain


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


def test_every_namegen_variable_is_a_setting_the_app_accepts(container, settings_env):
    known = {f"NAMEGEN_{name.upper()}" for name in Settings.model_fields}
    values = {e["name"]: e.get("value", "1") for e in container["env"] if e["name"].startswith("NAMEGEN_")}
    values |= settings_env
    assert set(values) <= known
    Settings(**{k.removeprefix("NAMEGEN_").lower(): v for k, v in values.items()})


def test_prometheus_finds_the_metrics(pod, objects, container):
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    (port,) = [p for p in container["ports"] if p["name"] == "http"]  # the probe port serves /health only
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])


def test_the_optional_service_monitor_scrapes_the_service(tmp_path, objects):
    base = configured(tmp_path)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(base, overlay)}\n"
        f"components:\n  - {os.path.relpath(base / 'components' / 'servicemonitor', overlay)}\n",
        encoding="utf-8",
    )
    docs = [doc for doc in yaml.safe_load_all(kustomize(overlay)) if doc]
    (monitor,) = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = objects["Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] and endpoint["path"] == "/metrics"


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


def test_the_image_comes_from_image_env_and_its_absence_fails_before_the_cluster(tmp_path, container):
    assert container["image"] == IMAGE  # image.env, as the README's recipe writes it
    shutil.copy(K8S / "image.env.example", tmp_path / "example.env")
    assert f"IMAGE={IMAGE}" in (tmp_path / "example.env").read_text()  # the example is what the README shows
    unset = configured(tmp_path / "unset", image=None)
    done = subprocess.run([KUBECTL, "kustomize", str(unset)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "image.env" in done.stderr
