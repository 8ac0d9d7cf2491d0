"""deploy/k8s renders offline for every overlay (`kubectl kustomize`), every object is valid for its kind
(built-in kinds by kubernetes-validate, KEDA's by KEDA's CRD schemas), and the manifests wire what the code needs:
every setting it reads, probe paths that exist, a grace period that covers the drain, least privilege."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from services.registration.config import RegistrationConfig
from shared import tracing
from shared.runtime import SETTLE_S, SHUTDOWN_S
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir())
KUBERNETES = "1.32"  # the oldest Kubernetes minor release still supported upstream when this was written
KEDA_MODELS = "@kubernetes-models/keda@2.0.0"
APPS = {"registration": registration_app, "comments": comments_app, "notifications": notifications_app}
SECRET = "moteplass-secrets"
# Settings the code reads that need no value in a cluster, each with its reason.
NOT_WIRED = {
    "SMTP_CA_FILE": "only for an SMTP server with a private CA: mount the file and set it in the overlay",
    "JWT_JWKS_URL": "only when tokens come from an identity provider instead of JWT_SECRET",
    "DEV_MODE": "local development only (make run); off by default, never on in a cluster",
    "DEV_SECRET_FILE": "only read in dev mode",
}


def env_names() -> set[str]:
    """Every environment variable the code reads."""
    names = {field.upper() for field in Settings.model_fields} | set(tracing.ENVIRONMENT)
    for config in (RegistrationConfig, CommentsConfig):
        names |= {config.model_config["env_prefix"] + field.upper() for field in config.model_fields}
    return names


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/k8s (it comes with this kind of machine)"
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / request.param)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return request.param, [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def container(deployment: dict) -> dict:
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    return app


def config_name(objects: list[dict]) -> str:
    (name,) = [name for name in of_kind(objects, "ConfigMap") if name.startswith("moteplass-settings")]
    return name


def settings_of(objects: list[dict]) -> dict[str, str]:
    return of_kind(objects, "ConfigMap")[config_name(objects)]["data"]


def test_overlays_exist():
    assert {"local", "production"} <= set(OVERLAYS)


def test_built_in_kinds_are_valid(rendered):
    _, objects = rendered
    built_in = [obj for obj in objects if "keda.sh" not in obj["apiVersion"]]
    for obj in built_in:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress",
            "ConfigMap"} <= {obj["kind"] for obj in built_in}


@pytest.fixture(scope="session")
def keda_models(tmp_path_factory) -> Path:
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "node and npm are needed to check KEDA objects against KEDA's schemas"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "moteplass-tests" / "keda"
    if not (cache / "node_modules" / "@kubernetes-models" / "keda").exists():
        subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(cache), KEDA_MODELS],
                       check=True, timeout=300)
    return cache / "node_modules" / "@kubernetes-models" / "keda"


def keda_errors(objects: list[dict], models: Path) -> list[str]:
    out = subprocess.run(["node", str(ROOT / "tests" / "support" / "validate_keda.mjs")], input=json.dumps(objects),
                         capture_output=True, text=True, check=True, timeout=60,
                         env={**os.environ, "KEDA_MODELS": str(models)})
    return json.loads(out.stdout)


def test_keda_kinds_are_valid(rendered, keda_models):
    _, objects = rendered
    keda = [obj for obj in objects if "keda.sh" in obj["apiVersion"]]
    assert {obj["kind"] for obj in keda} == {"ScaledObject", "TriggerAuthentication"}
    assert keda_errors(keda, keda_models) == []


def test_the_keda_check_can_fail(keda_models):
    broken = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
              "spec": {"scaleTargetRef": {"name": "notifications"}, "minReplicaCount": "two", "triggers": []}}
    assert keda_errors([broken], keda_models)


def test_every_setting_the_code_reads_is_wired(rendered):
    _, objects = rendered
    configured = set(settings_of(objects))
    for name, deployment in of_kind(objects, "Deployment").items():
        if name not in APPS:
            continue
        app = container(deployment)
        assert app["envFrom"] == [{"configMapRef": {"name": config_name(objects)}}]
        from_secret = {env["name"] for env in app["env"] if env["valueFrom"]["secretKeyRef"]["name"] == SECRET}
        wired = configured | from_secret
        missing = env_names() - wired - set(NOT_WIRED)
        assert not missing, f"{name}: wire {sorted(missing)} in deploy/k8s/base/settings.env or the Secret"
        assert wired <= env_names(), f"{name}: variables the code does not read: {sorted(wired - env_names())}"
        assert {"JWT_SECRET", "MONGO_URL", "AMQP_URL"} <= from_secret, "credentials come from the Secret only"
    assert set(NOT_WIRED) <= env_names(), "NOT_WIRED names a setting that no longer exists"


def test_settings_parse_and_name_each_service_port(rendered, monkeypatch):
    _, objects = rendered
    for key, value in settings_of(objects).items():  # as the container reads them: from its environment
        monkeypatch.setenv(key, value)
    settings, _, _ = Settings(), RegistrationConfig(), CommentsConfig()
    assert settings.host == "0.0.0.0"
    deployments = of_kind(objects, "Deployment")
    for name in APPS:
        app = container(deployments[name])
        assert app["command"] == ["python", "-m", f"services.{name}"]
        assert [port["containerPort"] for port in app["ports"] if port["name"] == "http"] == [
            getattr(settings, f"{name}_port")]


def test_probes_name_routes_the_services_have(rendered):
    _, objects = rendered
    settings = Settings(jwt_secret="k8s-test-secret-that-is-long-enough")
    for name, create_app in APPS.items():
        paths = {resource.get_info().get("path") for resource in create_app(settings).router.resources()}
        app = container(of_kind(objects, "Deployment")[name])
        probes = {probe: app[probe]["httpGet"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert probes["readinessProbe"]["path"] == "/readyz"
        for probe in probes.values():
            assert probe["path"] in paths and probe["port"] == "http"


def test_least_privilege_and_a_grace_period_that_covers_the_drain(rendered):
    _, objects = rendered
    for name in APPS:
        pod = of_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]
        app = container(of_kind(objects, "Deployment")[name])
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        assert app["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                          "capabilities": {"drop": ["ALL"]}}
        assert {"/tmp"} == {mount["mountPath"] for mount in app["volumeMounts"]}
        assert set(app["resources"]["requests"]) == {"cpu", "memory"} and "memory" in app["resources"]["limits"]
        pre_stop = int(app["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + SHUTDOWN_S + SETTLE_S + 5


def test_scaling_and_disruption(rendered):
    _, objects = rendered
    assert set(of_kind(objects, "PodDisruptionBudget")) >= set(APPS)
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(objects, "HorizontalPodAutoscaler").values()} \
        == {"registration", "comments"}
    (scaled,) = of_kind(objects, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "notifications"
    assert scaled["spec"]["minReplicaCount"] >= 1, "the reminder sweep runs in notifications: never scale to zero"
    (trigger,) = scaled["spec"]["triggers"]
    settings = Settings(queue_prefix=settings_of(objects).get("QUEUE_PREFIX", ""))
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["queueName"] == settings.queue_name("notifications")
    auth = of_kind(objects, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "host", "name": SECRET, "key": "AMQP_URL"}]


def egress_ports(objects: list[dict], service: str) -> set[int]:
    ports = set()
    for policy in of_kind(objects, "NetworkPolicy").values():
        selector = policy["spec"]["podSelector"]
        selected = selector.get("matchLabels", {}).get("app.kubernetes.io/name") == service or any(
            service in expression["values"] for expression in selector.get("matchExpressions", []))
        if selected:
            ports |= {port["port"] for rule in policy["spec"].get("egress", []) for port in rule["ports"]}
    return ports


def test_each_service_reaches_only_what_it_needs(rendered):
    overlay, objects = rendered
    smtp_port = int(settings_of(objects)["SMTP_PORT"])
    assert {53, 27017, 5672, smtp_port} <= egress_ports(objects, "notifications")
    for service in ("registration", "comments"):
        assert smtp_port not in egress_ports(objects, service) and 25 not in egress_ports(objects, service)
    for service in APPS:
        assert egress_ports(objects, service) <= {53, 27017, 5671, 5672, 25, 465, 587, 1025, 443}, overlay
        denied = of_kind(objects, "NetworkPolicy")["default-deny"]["spec"]
        assert denied["policyTypes"] == ["Ingress", "Egress"] and service in denied["podSelector"][
            "matchExpressions"][0]["values"]


def test_the_ingress_serves_the_hosts_the_mails_link_to(rendered):
    _, objects = rendered
    (ingress,) = of_kind(objects, "Ingress").values()
    routes = {rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"] for rule in ingress["spec"]["rules"]}
    config = settings_of(objects)
    assert routes[urlsplit(config["PUBLIC_BASE_URL"]).hostname] == "registration"
    assert routes[urlsplit(config["NOTIFICATIONS_PUBLIC_URL"]).hostname] == "notifications"
    assert "comments" in routes.values()
