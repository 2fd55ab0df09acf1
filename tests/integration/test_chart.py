"""The Helm chart, with the real helm and kubectl binaries against the real apiserver.

- `helm lint --strict` and `helm template` with the default values and with every option on
  (data/all-options.yaml), and the rendered objects accepted by `kubectl apply --dry-run=server`;
- a second release (its own name and namespace) installed, upgraded and uninstalled for real;
- least privilege: what the chart's ServiceAccount may and may not do, asked with
  `kubectl auth can-i` and tried with real requests;
- the caBundle the operator wrote into its webhook configuration survives `helm upgrade`;
- the CRD upgrade command the chart documents works on CRDs that `helm install` created.

cert-manager and the Prometheus Operator are not installed here. Rather than filtering their
objects out of the rendered output, data/standin-crds.yaml installs minimal stand-in CRDs for
Certificate, Issuer and ServiceMonitor whose schemas type the fields the chart writes: the
apiserver then really validates and stores those objects (and `helm install` can create them),
which also catches a misspelt or mistyped field or a wrong enum value in the chart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from commands import ok, usersecrets
from conftest import (
    CLUSTER_NAME,
    api_client,
    bind_user,
    create_namespace,
    delete_namespace,
    role_binding,
    wait_for,
)
from usersecrets_dev import chart
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

CHART = chart.CHART
DATA = Path(__file__).parent / "data"
ALL_OPTIONS = DATA / "all-options.yaml"
STANDIN_CRDS = DATA / "standin-crds.yaml"

# Names of the `operator` fixture's release: its full name is the release name, because the
# release name contains the chart name (see _helpers.tpl).
RELEASE_NS = chart.RELEASE_NAMESPACE
FULLNAME = chart.RELEASE
WEBHOOK_CONFIG = FULLNAME
LEASE = f"{FULLNAME}-leader"
WEBHOOK_CERT_SECRET = f"{FULLNAME}-webhook-tls"
USER_NS = "alice-jobs"  # `can-i` needs no existing namespace

Docs = list[dict[str, Any]]


@dataclass
class Tools:
    """helm and kubectl from the control plane's bin_dir, as admin unless told otherwise."""

    cluster: ControlPlane
    home: Path

    def _env(self) -> dict[str, str]:
        # Helm's caches and config stay in the test's own directory, not in $HOME.
        return {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "helm-cache"),
            "HELM_CONFIG_HOME": str(self.home / "helm-config"),
            "HELM_DATA_HOME": str(self.home / "helm-data"),
        }

    def run(
        self, tool: str, *args: str | Path, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.cluster.bin_dir / tool), *map(str, args)],
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{tool} {' '.join(map(str, args))} exited with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def helm(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, f"--kubeconfig={self.cluster.kubeconfig}", check=check)

    def kubectl(
        self, *args: str | Path, kubeconfig: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "kubectl",
            f"--kubeconfig={kubeconfig or self.cluster.kubeconfig}",
            f"--cache-dir={self.home / 'kube-cache'}",
            *args,
            check=check,
        )


@pytest.fixture(scope="module")
def tools(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Tools:
    return Tools(cluster, tmp_path_factory.mktemp("chart-tools"))


@pytest.fixture(scope="module")
def standin_crds(tools: Tools) -> Iterator[None]:
    """Stand-ins for the cert-manager and Prometheus Operator CRDs (see the module docstring)."""
    tools.kubectl("apply", "-f", STANDIN_CRDS)
    tools.kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "usersecrets.io/test=standin-crd",
        "--timeout=60s",
    )
    yield
    tools.kubectl("delete", "-f", STANDIN_CRDS, "--ignore-not-found", "--wait=false")


def parse(manifest: str) -> Docs:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def one(docs: Docs, kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(docs: Docs) -> list[str]:
    return sorted(doc["kind"] for doc in docs)


# -- lint and template --------------------------------------------------------------------

VALUES: dict[str, Sequence[str | Path]] = {
    "defaults": (),
    "all-options": ("--values", ALL_OPTIONS),
    # The same with cert-manager's self-signed Issuer instead of the given ClusterIssuer.
    "all-options-self-signed": ("--values", ALL_OPTIONS, "--set", "certManager.issuerRef=null"),
    # The form the `operator` fixture installs: webhook URL, one replica (so no PDB).
    "dev-url-one-replica": (
        "--set",
        "webhook.url=https://127.0.0.1:8443/mutate-pods",
        "--set",
        "replicaCount=1",
    ),
}

BASE_KINDS = [
    "ClusterRole",
    "ClusterRoleBinding",
    "Deployment",
    "MutatingWebhookConfiguration",
    "Role",
    "RoleBinding",
    "Service",
    "Service",
    "ServiceAccount",
    "ValidatingWebhookConfiguration",
]
# Without cert-manager: the Role (and its binding) that lets it replace its certificate Secret.
# With every option: the client CA of webhook.clientAuth, and networkPolicy.
ALL_OPTIONS_KINDS = ["ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor"]
SELF_MANAGED_CERT_KINDS = ["Role", "RoleBinding"]
#: The uninstall hook (uninstall.deleteCopies, on by default): its identity and its Job.
UNINSTALL_KINDS = [
    "ClusterRole",
    "ClusterRoleBinding",
    "Job",
    "Role",
    "RoleBinding",
    "ServiceAccount",
]
#: Users' rights in the built-in admin and edit roles (rbac.aggregateClusterRoles, on by default).
AGGREGATED_KINDS = ["ClusterRole"]
EXPECTED_KINDS = {
    "defaults": sorted(
        [
            *BASE_KINDS,
            *SELF_MANAGED_CERT_KINDS,
            *UNINSTALL_KINDS,
            *AGGREGATED_KINDS,
            "PodDisruptionBudget",
        ]
    ),
    "all-options": sorted([*BASE_KINDS, *ALL_OPTIONS_KINDS, "Certificate"]),
    "all-options-self-signed": sorted([*BASE_KINDS, *ALL_OPTIONS_KINDS, "Certificate", "Issuer"]),
    "dev-url-one-replica": sorted(
        [*BASE_KINDS, *SELF_MANAGED_CERT_KINDS, *UNINSTALL_KINDS, *AGGREGATED_KINDS]
    ),
}


@pytest.mark.parametrize("variant", ["defaults", "all-options"])
def test_helm_lint_strict(tools: Tools, variant: str) -> None:
    result = tools.run("helm", "lint", "--strict", CHART, *VALUES[variant])
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (("--set", "replicaCuont=2"), "replicaCuont"),
        (("--set", "webhook.failurePolicy=Ignore"), "failurePolicy"),
        (("--set", "image.digest=latest"), "digest"),
        (("--set", "webhook.timeoutSeconds=31"), "timeoutSeconds"),
        (
            ("--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"),
            "needs metrics.enabled",
        ),
        (("--set", "networkPolicy.enabled=true"), "needs networkPolicy.webhookFrom"),
        (
            ("--set", "networkPolicy.enabled=true", "--set", "networkPolicy.webhookFrom[0].x=y"),
            "webhookFrom",
        ),
        (
            ("--set", "webhook.clientAuth.allowedNames[0]=kube-apiserver"),
            "needs webhook.clientAuth.caBundle",
        ),
        (("--set", "webhook.clientAuth.caBundle=not-a-certificate"), "caBundle"),
        (("--set", "shards=3"), "replicaCount must be at least shards"),
        (("--set", "shards=65", "--set", "replicaCount=65"), "shards"),
    ],
    ids=[
        "misspelt-key",
        "failure-policy-ignore",
        "bad-digest",
        "timeout",
        "monitor-no-metrics",
        "network-policy-no-peers",
        "network-policy-bad-peer",
        "client-names-no-ca",
        "client-ca-not-pem",
        "shards-without-replicas",
        "shards-past-the-slots",
    ],
)
def test_bad_values_are_refused(tools: Tools, values: Sequence[str], complaint: str) -> None:
    result = tools.run("helm", "template", "x", CHART, *values, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr


def render(tools: Tools, release: str, namespace: str, variant: str) -> str:
    return tools.run(
        "helm", "template", release, CHART, f"--namespace={namespace}", *VALUES[variant]
    ).stdout


@pytest.mark.usefixtures("standin_crds")
@pytest.mark.parametrize("variant", list(VALUES))
def test_template_is_accepted_by_the_apiserver(
    tools: Tools, namespace: str, tmp_path: Path, variant: str
) -> None:
    manifest = render(tools, "dryrun", namespace, variant)
    docs = parse(manifest)
    assert kinds(docs) == EXPECTED_KINDS[variant]
    path = tmp_path / "rendered.yaml"
    path.write_text(manifest)
    result = tools.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", path)
    assert result.stdout.count("(server dry run)") == len(docs), result.stdout
    # No unknown or duplicate fields, no deprecated APIs.
    assert "Warning" not in result.stderr, result.stderr


def test_all_options_reach_the_objects(tools: Tools) -> None:
    """Each option of data/all-options.yaml shows up where it belongs."""
    docs = parse(render(tools, "opts", "opts-ns", "all-options"))
    options = yaml.safe_load(ALL_OPTIONS.read_text())

    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["name"] == "opts-usec"  # nameOverride
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    for key, value in options["podAnnotations"].items():
        assert pod["metadata"]["annotations"][key] == value
    for key, value in options["podLabels"].items():
        assert pod["metadata"]["labels"][key] == value
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "usersecrets-operator"
    assert spec["imagePullSecrets"] == options["imagePullSecrets"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == options["nodeSelector"]
    assert spec["tolerations"] == options["tolerations"]
    assert spec["affinity"] == options["affinity"]
    spread = spec["topologySpreadConstraints"]
    assert spread[0]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "usec",
        "app.kubernetes.io/instance": "opts",
    }
    assert spread[1]["labelSelector"] == options["topologySpreadConstraints"][1]["labelSelector"]
    container = spec["containers"][0]
    assert container["image"] == f"{options['image']['repository']}@{options['image']['digest']}"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == options["resources"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["USERSECRETS_CLUSTER_NAME"] == "chart-test.cluster_1"
    assert env["USERSECRETS_USER_LABEL"] == "example.com/owner"
    assert env["USERSECRETS_NAMESPACE_NAME_FALLBACK"] == "false"
    assert yaml.safe_load(env["USERSECRETS_SYSTEM_NAMESPACES"]) == options["systemNamespaces"]
    assert env["USERSECRETS_LOG_LEVEL"] == "DEBUG"
    assert env["USERSECRETS_SHARDS"] == "3"
    assert env["USERSECRETS_METRICS_PORT"] == "9090"
    assert env["USERSECRETS_WEBHOOK_CERT_DIR"] == "/etc/usersecrets/tls"
    assert env["KUBERNETES_SERVICE_HOST"] == "api.internal.example.com"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["USERSECRETS_WEBHOOK_CLIENT_CA_FILE"] == "/etc/usersecrets/client-ca/ca.crt"
    assert json.loads(env["USERSECRETS_WEBHOOK_CLIENT_NAMES"]) == ["kube-apiserver-webhook-client"]
    mounted = {v["name"]: v for v in spec["volumes"]}
    assert mounted["webhook-cert"]["secret"]["secretName"] == "opts-usec-webhook-cert"
    assert mounted["webhook-client-ca"]["configMap"]["name"] == "opts-usec-webhook-client-ca"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["webhook-client-ca"] == {
        "name": "webhook-client-ca",
        "mountPath": "/etc/usersecrets/client-ca",
        "readOnly": True,
    }
    client_ca = one(docs, "ConfigMap")
    assert client_ca["metadata"]["name"] == "opts-usec-webhook-client-ca"
    assert client_ca["data"] == {"ca.crt": options["webhook"]["clientAuth"]["caBundle"]}
    assert pod["metadata"]["annotations"]["checksum/webhook-client-ca"] == (
        hashlib.sha256(options["webhook"]["clientAuth"]["caBundle"].encode()).hexdigest()
    )

    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "usec", "app.kubernetes.io/instance": "opts"}
    }
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "ports": [{"port": "webhook", "protocol": "TCP"}],
            "from": options["networkPolicy"]["webhookFrom"],
        },
        {
            "ports": [{"port": "http", "protocol": "TCP"}],
            "from": options["networkPolicy"]["metricsFrom"],
        },
    ]

    account = one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == options["serviceAccount"]["annotations"]

    webhook = one(docs, "MutatingWebhookConfiguration")
    assert webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "opts-ns/opts-usec"
    )
    hook = webhook["webhooks"][0]
    assert hook["timeoutSeconds"] == 10
    assert hook["failurePolicy"] == "Fail"
    assert hook["clientConfig"]["service"] == {
        "name": "opts-usec-webhook",
        "namespace": "opts-ns",
        "path": "/mutate-pods",
        "port": 443,
    }
    excluded = hook["namespaceSelector"]["matchExpressions"][0]["values"]
    assert excluded == ["kube-system", "opts-ns", "ci-runners", "legacy-jobs"]
    # Shards: UserSecrets get their owner's slot as they are written; the operator may label
    # them (and nothing else of them), and each shard has a Lease.
    labeller = webhook["webhooks"][1]
    assert (labeller["name"], labeller["failurePolicy"]) == ("slots.usersecrets.io", "Fail")
    assert labeller["clientConfig"]["service"]["path"] == "/label-usersecrets"
    assert labeller["rules"][0]["resources"] == ["usersecrets"]
    assert {"apiGroups": ["usersecrets.io"], "resources": ["usersecrets"], "verbs": ["patch"]} in (
        one(docs, "ClusterRole")["rules"]
    )
    leases = [r for r in one(docs, "Role")["rules"] if "resourceNames" in r]
    assert leases[0]["resourceNames"] == [f"opts-usec-leader-{shard}-of-3" for shard in range(3)]

    # With cert-manager, its CA injector writes caBundle: no RBAC on webhook configurations,
    # and cert-manager writes the certificate Secret: no Role to replace it.
    role = one(docs, "ClusterRole")
    assert not [r for r in role["rules"] if "admissionregistration.k8s.io" in r["apiGroups"]]
    assert one(docs, "Role")["metadata"]["name"] == "opts-usec-leader-election"

    certificate = one(docs, "Certificate")
    assert certificate["spec"]["issuerRef"] == options["certManager"]["issuerRef"]
    assert "opts-usec-webhook.opts-ns.svc" in certificate["spec"]["dnsNames"]

    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "5s"
    metrics = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")
    )
    assert metrics["spec"]["ports"][0]["port"] == 9090

    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"


def aggregated(docs: Docs) -> Docs:
    """The ClusterRoles whose rules join built-in roles."""
    return [
        doc
        for doc in docs
        if doc["kind"] == "ClusterRole"
        and any(label.startswith(AGGREGATE_TO) for label in doc["metadata"]["labels"])
    ]


def test_users_rights_join_the_admin_and_edit_roles_never_view(tools: Tools) -> None:
    (role,) = aggregated(parse(render(tools, "agg", "agg-ns", "defaults")))
    assert role["metadata"]["name"] == "agg-usersecrets-edit"
    labels = role["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith(AGGREGATE_TO)} == {
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
    }
    assert role["rules"] == [
        {
            "apiGroups": ["usersecrets.io"],
            "resources": ["usersecrets", "secretgrants"],
            "verbs": [
                "get",
                "list",
                "watch",
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
            ],
        }
    ]
    off = tools.run("helm", "template", "agg", CHART, "--set", "rbac.aggregateClusterRoles=false")
    assert aggregated(parse(off.stdout)) == []


def test_a_user_with_the_builtin_edit_role_keeps_and_shares_secrets(
    tools: Tools,
    cluster: ControlPlane,
    operator: OperatorProcess,
    admin: client.ApiClient,
    users: Callable[[str], str],
) -> None:
    """Only a RoleBinding to `edit` (or `admin`), as platform teams give: the chart's
    aggregated rules are enough to add and share; `view` reads no UserSecret."""
    editor, viewer, owner = users("dave"), users("erin"), users("frank")
    namespace = create_namespace(admin, {"usersecrets.io/user": editor})
    try:
        bind_user(admin, namespace, editor, "edit", ("create", "usersecrets.io", "secretgrants"))
        bind_user(admin, namespace, viewer, "view", ("list", "", "pods"))
        bind_user(admin, namespace, owner, "admin", ("create", "usersecrets.io", "usersecrets"))
        where = ["-n", namespace, "--kubeconfig", str(cluster.user_kubeconfig(editor))]
        ok(usersecrets("secret", "add", "wandb-token", "s3cr3t", "--wait", *where))
        ok(usersecrets("share", "secret:wandb-token", viewer, "--wait", *where))
        assert (
            ok(usersecrets("acl", "list", "--shared", *where)) == f"secret:wandb-token {viewer}\n"
        )

        def can_i(user: str, *question: str) -> str:
            kubeconfig = cluster.user_kubeconfig(user)
            asked = tools.kubectl(
                "auth", "can-i", *question, "-n", namespace, kubeconfig=kubeconfig, check=False
            )
            return asked.stdout.strip()

        usersecrets_ = "usersecrets.usersecrets.io"
        grants = "secretgrants.usersecrets.io"
        assert can_i(viewer, "get", usersecrets_) == "no"
        assert can_i(viewer, "list", usersecrets_) == "no"
        assert can_i(viewer, "list", grants) == "no"
        assert can_i(editor, "delete", grants) == "yes"
        assert can_i(owner, "update", usersecrets_) == "yes"
        assert can_i(editor, "patch", usersecrets_, "--subresource=status") == "no"
    finally:
        delete_namespace(admin, namespace)


def test_network_policy_opens_only_the_webhook_port_to_the_given_peers(tools: Tools) -> None:
    """Enabled with the webhook's peers only: the metrics port stays open to any source, and
    nothing else of the pods is reachable (an Ingress policy admits only what it lists)."""
    peer = {"ipBlock": {"cidr": "203.0.113.0/28"}}
    result = tools.run(
        "helm",
        "template",
        "np",
        CHART,
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        f"networkPolicy.webhookFrom[0].ipBlock.cidr={peer['ipBlock']['cidr']}",
    )
    policy = one(parse(result.stdout), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {"ports": [{"port": "webhook", "protocol": "TCP"}], "from": [peer]},
        {"ports": [{"port": "http", "protocol": "TCP"}]},
    ]


@pytest.mark.usefixtures("standin_crds")
def test_standin_crds_do_validate(tools: Tools, namespace: str, tmp_path: Path) -> None:
    """The stand-ins are worth something: a wrong value in a field the chart writes is refused."""
    docs = parse(render(tools, "bad", namespace, "all-options"))
    certificate = one(docs, "Certificate")
    certificate["spec"]["privateKey"]["algorithm"] = "EC"  # upstream: RSA, ECDSA or Ed25519
    monitor = one(docs, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    for doc in (certificate, monitor):
        path = tmp_path / f"{doc['kind']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = tools.kubectl("apply", "--dry-run=server", "-f", path, check=False)
        assert result.returncode != 0
        assert "Unsupported value" in result.stderr or "should match" in result.stderr


# -- a second release, installed for real ----------------------------------------------------


def webhook_configs_of(admin: client.ApiClient, release: str) -> list[str]:
    """The release's webhook configurations, mutating then validating."""
    registration = client.AdmissionregistrationV1Api(admin)
    selector = f"app.kubernetes.io/instance={release}"
    mutating = registration.list_mutating_webhook_configuration(label_selector=selector)
    validating = registration.list_validating_webhook_configuration(label_selector=selector)
    return [c.metadata.name for c in (*mutating.items, *validating.items)]


@pytest.mark.usefixtures("standin_crds")
def test_second_release_installs_upgrades_and_uninstalls(
    tools: Tools, admin: client.ApiClient, tmp_path: Path
) -> None:
    release = "chart-e2e"
    namespace = f"chart-e2e-{uuid.uuid4().hex[:6]}"
    name = f"{release}-usec"  # nameOverride in all-options.yaml
    where = (f"--namespace={namespace}",)
    installed = False
    try:
        tools.helm("install", release, CHART, *where, "--create-namespace", "--values", ALL_OPTIONS)
        installed = True
        manifest = tools.helm("get", "manifest", release, *where).stdout
        (tmp_path / "installed.yaml").write_text(manifest)
        # Every object of the release exists (pods never run here: no kubelet).
        listed = tools.kubectl("get", "-f", tmp_path / "installed.yaml", "-o", "name").stdout
        assert len(listed.split()) == len(parse(manifest)) == len(EXPECTED_KINDS["all-options"])

        admission = client.AdmissionregistrationV1Api(admin)
        config = admission.read_mutating_webhook_configuration(name)
        hook = config.webhooks[0]
        assert hook.client_config.service.name == f"{name}-webhook"
        assert hook.client_config.service.namespace == namespace
        assert config.metadata.annotations["cert-manager.io/inject-ca-from"] == (
            f"{namespace}/{name}"
        )
        custom = client.CustomObjectsApi(admin)
        custom.get_namespaced_custom_object(
            "cert-manager.io", "v1", namespace, "certificates", name
        )

        # Upgrade: cert-manager and the ServiceMonitor off, one replica (so no PDB).
        tools.helm(
            "upgrade",
            release,
            CHART,
            *where,
            "--values",
            ALL_OPTIONS,
            "--set",
            "certManager.enabled=false",
            "--set",
            "metrics.serviceMonitor.enabled=false",
            "--set",
            "networkPolicy.enabled=false",
            "--set",
            "webhook.clientAuth.caBundle=",
            "--set",
            "webhook.clientAuth.allowedNames=null",
            "--set",
            "replicaCount=1",
            "--set",
            "shards=1",
            "--set",
            "webhook.timeoutSeconds=7",
        )
        assert "STATUS: deployed" in tools.helm("status", release, *where).stdout
        upgraded = parse(tools.helm("get", "manifest", release, *where).stdout)
        assert kinds(upgraded) == sorted([*BASE_KINDS, *SELF_MANAGED_CERT_KINDS])
        for kind in ("certificates", "servicemonitors"):
            group = "cert-manager.io" if kind == "certificates" else "monitoring.coreos.com"
            listing = custom.list_namespaced_custom_object(group, "v1", namespace, kind)
            assert listing["items"] == [], f"{kind} left after the upgrade"
        assert (
            client.PolicyV1Api(admin).list_namespaced_pod_disruption_budget(namespace).items == []
        )
        apps = client.AppsV1Api(admin)
        assert apps.read_namespaced_deployment(name, namespace).spec.replicas == 1
        config = admission.read_mutating_webhook_configuration(name)
        assert config.webhooks[0].timeout_seconds == 7
        assert "cert-manager.io/inject-ca-from" not in (config.metadata.annotations or {})
        # Without cert-manager the operator patches caBundle itself: RBAC for exactly this one.
        role = client.RbacAuthorizationV1Api(admin).read_cluster_role(name)
        webhook_rules = [r for r in role.rules if "admissionregistration.k8s.io" in r.api_groups]
        assert [(r.resource_names, r.verbs) for r in webhook_rules] == [([name], ["get", "patch"])]

        tools.helm("uninstall", release, *where, "--wait", "--timeout=60s")
        installed = False
        # Nothing of the release can intercept pods any more, and its cluster-wide RBAC is gone.
        assert webhook_configs_of(admin, release) == []
        rbac = client.RbacAuthorizationV1Api(admin)
        selector = f"app.kubernetes.io/instance={release}"
        assert rbac.list_cluster_role(label_selector=selector).items == []
        assert rbac.list_cluster_role_binding(label_selector=selector).items == []
        # Helm never deletes crds/: every user's UserSecrets survive an uninstall.
        extensions = client.ApiextensionsV1Api(admin)
        extensions.read_custom_resource_definition("usersecrets.usersecrets.io")
        extensions.read_custom_resource_definition("secretgrants.usersecrets.io")
    finally:
        # Its webhook (failurePolicy Fail, served by nobody) must never outlive this test.
        if installed:
            tools.helm("uninstall", release, *where, "--wait", "--timeout=60s", check=False)
        tools.kubectl(
            "delete",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations",
            "-l",
            f"app.kubernetes.io/instance={release}",
            "--ignore-not-found",
            check=False,
        )
        try:
            client.CoreV1Api(admin).delete_namespace(namespace)
        except ApiException as error:
            if error.status != 404:
                raise
    assert webhook_configs_of(admin, release) == []


# -- least privilege ------------------------------------------------------------------------

ALLOWED: list[tuple[str, ...]] = [
    # The desired state's inputs and outputs, cluster-wide.
    ("list", "secrets", "--all-namespaces"),
    ("watch", "secrets", "--all-namespaces"),
    ("get", "secrets", "-n", USER_NS),
    ("create", "secrets", "-n", USER_NS),
    ("patch", "secrets", "-n", USER_NS),
    ("delete", "secrets", "-n", USER_NS),
    # Certificate rotation: its own certificate Secret only (a Role in its namespace).
    ("update", f"secrets/{WEBHOOK_CERT_SECRET}", "-n", RELEASE_NS),
    ("list", "namespaces"),
    ("watch", "namespaces"),
    ("get", "namespaces"),
    ("list", "usersecrets.usersecrets.io", "--all-namespaces"),
    ("watch", "usersecrets.usersecrets.io", "--all-namespaces"),
    ("list", "secretgrants.usersecrets.io", "--all-namespaces"),
    ("watch", "secretgrants.usersecrets.io", "--all-namespaces"),
    ("patch", "usersecrets.usersecrets.io", "--subresource=status", "-n", USER_NS),
    ("patch", "secretgrants.usersecrets.io", "--subresource=status", "-n", USER_NS),
    ("create", "events", "-n", USER_NS),
    ("list", "resourcequotas", "--all-namespaces"),
    ("watch", "resourcequotas", "--all-namespaces"),
    ("get", f"mutatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    ("patch", f"mutatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    ("get", f"validatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    ("patch", f"validatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    # Asking the apiserver whether the author of a valueFrom or a grant may read its Secret.
    ("create", "subjectaccessreviews.authorization.k8s.io"),
    # The Role lets it create a Lease of any name in its own namespace (create cannot be
    # limited by name), and read and renew only its own.
    ("create", "leases.coordination.k8s.io", "-n", RELEASE_NS),
    ("get", f"leases.coordination.k8s.io/{LEASE}", "-n", RELEASE_NS),
    ("update", f"leases.coordination.k8s.io/{LEASE}", "-n", RELEASE_NS),
]

REFUSED: list[tuple[str, ...]] = [
    # Workloads: it never touches them, its own Deployment included.
    ("patch", f"deployments.apps/{FULLNAME}", "-n", RELEASE_NS),
    ("patch", "deployments.apps", "-n", USER_NS),
    ("get", "deployments.apps", "-n", RELEASE_NS),
    ("patch", "jobs.batch", "-n", USER_NS),
    # Pods and their logs: the webhook gets the pod in the AdmissionReview.
    ("get", "pods", "-n", USER_NS),
    ("list", "pods", "--all-namespaces"),
    ("create", "pods", "-n", USER_NS),
    ("get", "pods", "--subresource=log", "-n", USER_NS),
    ("create", "pods", "--subresource=exec", "-n", USER_NS),
    # RBAC: no way to grant itself (or anyone) more.
    ("create", "rolebindings.rbac.authorization.k8s.io", "-n", USER_NS),
    ("create", "rolebindings.rbac.authorization.k8s.io", "-n", RELEASE_NS),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("update", "clusterroles.rbac.authorization.k8s.io"),
    ("patch", f"clusterroles.rbac.authorization.k8s.io/{FULLNAME}"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("patch", f"roles.rbac.authorization.k8s.io/{FULLNAME}-leader-election", "-n", RELEASE_NS),
    ("impersonate", "users"),
    ("impersonate", "serviceaccounts", "-n", RELEASE_NS),
    ("create", "serviceaccounts", "--subresource=token", "-n", RELEASE_NS),
    # Secrets: copies are created, patched and deleted, never replaced; only its certificate
    # Secret may be, in its own namespace.
    ("update", "secrets", "-n", USER_NS),
    ("update", "secrets", "--all-namespaces"),
    ("update", f"secrets/{WEBHOOK_CERT_SECRET}", "-n", USER_NS),
    ("update", "secrets/another-secret", "-n", RELEASE_NS),
    ("update", "secrets", "-n", RELEASE_NS),
    ("patch", f"roles.rbac.authorization.k8s.io/{FULLNAME}-webhook-certificate", "-n", RELEASE_NS),
    # Namespaces are read-only to it.
    ("delete", "namespaces"),
    ("create", "namespaces"),
    ("patch", "namespaces"),
    # UserSecrets and SecretGrants belong to their users: it only writes status, by patch.
    ("update", "usersecrets.usersecrets.io", "-n", USER_NS),
    ("patch", "usersecrets.usersecrets.io", "-n", USER_NS),
    ("create", "usersecrets.usersecrets.io", "-n", USER_NS),
    ("delete", "usersecrets.usersecrets.io", "-n", USER_NS),
    ("update", "usersecrets.usersecrets.io", "--subresource=status", "-n", USER_NS),
    ("patch", "secretgrants.usersecrets.io", "-n", USER_NS),
    ("delete", "secretgrants.usersecrets.io", "-n", USER_NS),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    # Webhook configurations other than its own, and its own beyond get/patch.
    ("patch", "mutatingwebhookconfigurations/someone-elses-webhook"),
    ("get", "mutatingwebhookconfigurations/someone-elses-webhook"),
    ("list", "mutatingwebhookconfigurations"),
    ("create", "mutatingwebhookconfigurations"),
    ("delete", f"mutatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    ("update", f"mutatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    ("patch", "validatingwebhookconfigurations/someone-elses-webhook"),
    ("list", "validatingwebhookconfigurations"),
    ("delete", f"validatingwebhookconfigurations/{WEBHOOK_CONFIG}"),
    ("create", "localsubjectaccessreviews.authorization.k8s.io", "-n", USER_NS),
    ("create", "tokenreviews.authentication.k8s.io"),
    # Leases: not another name's, not ours beyond get/update, not outside its namespace.
    ("get", "leases.coordination.k8s.io/another-lease", "-n", RELEASE_NS),
    ("update", "leases.coordination.k8s.io/another-lease", "-n", RELEASE_NS),
    ("patch", f"leases.coordination.k8s.io/{LEASE}", "-n", RELEASE_NS),
    ("delete", f"leases.coordination.k8s.io/{LEASE}", "-n", RELEASE_NS),
    ("list", "leases.coordination.k8s.io", "-n", RELEASE_NS),
    ("create", "leases.coordination.k8s.io", "-n", USER_NS),
    ("create", "leases.coordination.k8s.io", "-n", "kube-system"),
    # Events: it creates core/v1 Events and nothing more.
    ("patch", "events", "-n", USER_NS),
    ("list", "events", "-n", USER_NS),
    ("create", "events.events.k8s.io", "-n", USER_NS),
    # Quotas are read-only to it.
    ("patch", "resourcequotas", "-n", USER_NS),
    ("delete", "resourcequotas", "-n", USER_NS),
    # Nothing else.
    ("get", "configmaps", "-n", USER_NS),
    ("get", "serviceaccounts", "-n", USER_NS),
    ("create", "certificatesigningrequests.certificates.k8s.io"),
]


def can_i(tools: Tools, operator: OperatorProcess, question: Sequence[str]) -> bool:
    result = tools.kubectl("auth", "can-i", *question, kubeconfig=operator.kubeconfig, check=False)
    answer = result.stdout.strip()
    assert result.returncode in (0, 1), result.stderr
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_operator_runs_with_the_names_these_checks_use(operator: OperatorProcess) -> None:
    assert operator.env["USERSECRETS_WEBHOOK_CONFIG_NAME"] == WEBHOOK_CONFIG
    assert operator.env["USERSECRETS_LEASE_NAME"] == LEASE
    assert operator.env["USERSECRETS_WEBHOOK_CERT_SECRET"] == WEBHOOK_CERT_SECRET
    assert operator.env["USERSECRETS_OPERATOR_NAMESPACE"] == RELEASE_NS


@pytest.mark.parametrize("question", ALLOWED, ids=" ".join)
def test_service_account_may(
    tools: Tools, operator: OperatorProcess, question: tuple[str, ...]
) -> None:
    assert can_i(tools, operator, question)


@pytest.mark.parametrize("question", REFUSED, ids=" ".join)
def test_service_account_may_not(
    tools: Tools, operator: OperatorProcess, question: tuple[str, ...]
) -> None:
    assert not can_i(tools, operator, question)


def refused(call: Callable[[], object]) -> None:
    with pytest.raises(ApiException) as error:
        call()
    assert error.value.status == 403, error.value


JSON_PATCH = "application/json-patch+json"


def test_service_account_real_requests(
    operator: OperatorProcess, admin: client.ApiClient, namespace: str
) -> None:
    """The same boundary, with real requests as the chart's ServiceAccount.

    Writes that must be allowed are sent with dryRun=All: authorized and validated like real
    ones, but they change nothing under the running operator. Authorization comes before any
    lookup, so a refused request on a missing object is 403, not 404.
    """
    sa = api_client(operator.kubeconfig)
    core, apps = client.CoreV1Api(sa), client.AppsV1Api(sa)
    rbac, custom = client.RbacAuthorizationV1Api(sa), client.CustomObjectsApi(sa)
    admission, leases = client.AdmissionregistrationV1Api(sa), client.CoordinationV1Api(sa)

    # What it needs.
    core.list_secret_for_all_namespaces(limit=1)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="probe"), string_data={"k": "v"}),
        dry_run="All",
    )
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        "usersecrets.io",
        "v1alpha1",
        namespace,
        "usersecrets",
        {
            "apiVersion": "usersecrets.io/v1alpha1",
            "kind": "UserSecret",
            "metadata": {"name": "probe"},
            "spec": {"value": base64.b64encode(b"not-a-secret").decode()},
        },
    )
    usersecret = custom.get_namespaced_custom_object(
        "usersecrets.io", "v1alpha1", namespace, "usersecrets", "probe"
    )
    custom.patch_namespaced_custom_object_status(
        "usersecrets.io",
        "v1alpha1",
        namespace,
        "usersecrets",
        "probe",
        {"status": {"observedGeneration": usersecret["metadata"]["generation"]}},
        dry_run="All",
    )
    own = admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG)
    admission.patch_mutating_webhook_configuration(
        WEBHOOK_CONFIG,
        [{"op": "test", "path": "/webhooks/0/name", "value": own.webhooks[0].name}],
        dry_run="All",
        _content_type=JSON_PATCH,
    )
    certificate = core.read_namespaced_secret(WEBHOOK_CERT_SECRET, RELEASE_NS)
    core.replace_namespaced_secret(WEBHOOK_CERT_SECRET, RELEASE_NS, certificate, dry_run="All")
    wait_for(lambda: _read_lease(leases), what=f"the operator's Lease {RELEASE_NS}/{LEASE}")
    # The operator renews its Lease meanwhile: an update at a stale resourceVersion is a 409.
    wait_for(lambda: _renew_dry_run(leases), what="a dry-run update of the Lease")
    leases.create_namespaced_lease(
        RELEASE_NS,
        client.V1Lease(metadata=client.V1ObjectMeta(name="another-lease")),
        dry_run="All",
    )
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="probe."),
            involved_object=client.V1ObjectReference(
                kind="UserSecret", name="probe", namespace=namespace
            ),
            reason="Probe",
            message="authorization probe",
        ),
        dry_run="All",
    )

    # What it must not do.
    probe = client.V1Secret(metadata=client.V1ObjectMeta(name="probe"), string_data={"k": "v"})
    refused(lambda: core.replace_namespaced_secret("probe", namespace, probe, dry_run="All"))
    patch = {"spec": {"replicas": 5}}
    refused(lambda: apps.patch_namespaced_deployment(FULLNAME, RELEASE_NS, patch))
    refused(lambda: core.list_namespaced_pod(namespace))
    refused(lambda: core.read_namespaced_pod_log("any-pod", namespace))
    itself = {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}
    escalation = "usersecrets-escalation"
    refused(
        lambda: rbac.create_cluster_role_binding(role_binding(escalation, "cluster-admin", itself))
    )
    refused(
        lambda: rbac.create_namespaced_role_binding(
            namespace, role_binding(escalation, "admin", itself)
        )
    )
    # Not even its own ClusterRole.
    refused(
        lambda: rbac.patch_cluster_role(
            FULLNAME,
            [
                {
                    "op": "add",
                    "path": "/rules/-",
                    "value": {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                }
            ],
            _content_type=JSON_PATCH,
        )
    )
    refused(lambda: core.delete_namespace(namespace))
    refused(
        lambda: custom.patch_namespaced_custom_object(
            "usersecrets.io",
            "v1alpha1",
            namespace,
            "usersecrets",
            "probe",
            {"spec": {"value": base64.b64encode(b"tampered").decode()}},
        )
    )
    refused(
        lambda: custom.delete_namespaced_custom_object(
            "usersecrets.io", "v1alpha1", namespace, "usersecrets", "probe"
        )
    )
    decoy = f"usersecrets-test-decoy-{uuid.uuid4().hex[:6]}"
    client.AdmissionregistrationV1Api(admin).create_mutating_webhook_configuration(
        client.V1MutatingWebhookConfiguration(metadata=client.V1ObjectMeta(name=decoy))
    )
    try:
        label = [{"op": "add", "path": "/metadata/labels", "value": {"owned": "yes"}}]
        refused(
            lambda: admission.patch_mutating_webhook_configuration(
                decoy, label, _content_type=JSON_PATCH
            )
        )
        refused(lambda: admission.read_mutating_webhook_configuration(decoy))
        refused(lambda: admission.delete_mutating_webhook_configuration(WEBHOOK_CONFIG))
    finally:
        client.AdmissionregistrationV1Api(admin).delete_mutating_webhook_configuration(decoy)
    refused(lambda: leases.read_namespaced_lease("another-lease", RELEASE_NS))
    refused(lambda: leases.delete_namespaced_lease(LEASE, RELEASE_NS))


def _renew_dry_run(leases: client.CoordinationV1Api) -> bool:
    lease = leases.read_namespaced_lease(LEASE, RELEASE_NS)
    try:
        leases.replace_namespaced_lease(LEASE, RELEASE_NS, lease, dry_run="All")
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def _read_lease(leases: client.CoordinationV1Api) -> client.V1Lease | None:
    try:
        return leases.read_namespaced_lease(LEASE, RELEASE_NS)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


# -- upgrades ---------------------------------------------------------------------------------


def ca_bundle(admin: client.ApiClient) -> str | None:
    config = client.AdmissionregistrationV1Api(admin).read_mutating_webhook_configuration(
        WEBHOOK_CONFIG
    )
    bundle: str | None = config.webhooks[0].client_config.ca_bundle
    return bundle


def test_ca_bundle_survives_helm_upgrade(
    cluster: ControlPlane, operator: OperatorProcess, admin: client.ApiClient
) -> None:
    """Helm's three-way merge leaves the caBundle the operator wrote (the chart has none).

    The operator rechecks its certificate only hourly, so a caBundle present right after the
    upgrade was kept by Helm, not written again by the operator.
    """
    before = wait_for(lambda: ca_bundle(admin), what="the operator to patch caBundle")
    secret = client.CoreV1Api(admin).read_namespaced_secret(WEBHOOK_CERT_SECRET, RELEASE_NS)
    assert base64.b64decode(str(before)) == base64.b64decode(secret.data["ca.crt"])
    admission = client.AdmissionregistrationV1Api(admin)
    values = (f"clusterName={CLUSTER_NAME}", "logLevel=DEBUG")

    # The same values as the fixture: Helm has nothing to change.
    chart.install_chart(cluster, operator.webhook_port, *values)
    assert ca_bundle(admin) == before

    # A change to the webhook configuration itself: Helm patches the object, not caBundle.
    version = admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG).metadata
    try:
        chart.install_chart(cluster, operator.webhook_port, *values, "webhook.timeoutSeconds=7")
        changed = admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG)
        assert changed.metadata.resource_version != version.resource_version
        assert changed.webhooks[0].timeout_seconds == 7
        assert changed.webhooks[0].client_config.ca_bundle == before
    finally:
        chart.install_chart(cluster, operator.webhook_port, *values)
    restored = admission.read_mutating_webhook_configuration(WEBHOOK_CONFIG)
    assert restored.webhooks[0].timeout_seconds == 5
    assert restored.webhooks[0].client_config.ca_bundle == before


CRD_UPGRADE = re.compile(r"kubectl apply --server-side[^\n`]*-f crds/")


@pytest.mark.usefixtures("operator")
def test_documented_crd_upgrade_works_on_crds_helm_installed(tools: Tools, tmp_path: Path) -> None:
    """NOTES.txt and the chart's README give one command; it upgrades CRDs Helm created.

    `helm install` creates crds/ with Helm's field manager, so a plain server-side apply that
    changes them fails with a conflict; the documented command must not.
    """
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    readme = (CHART / "README.md").read_text()
    documented = set(CRD_UPGRADE.findall(notes))
    assert len(documented) == 1, documented
    command = documented.pop()
    assert set(CRD_UPGRADE.findall(readme)) == {command}

    # The CRDs of a newer chart: here the same ones with a changed description.
    crds = tmp_path / "crds"
    shutil.copytree(CHART / "crds", crds)
    path = crds / "usersecrets.io_usersecrets.yaml"
    changed, count = re.subn(r"description: ", "description: (new) ", path.read_text(), count=1)
    assert count == 1
    path.write_text(changed)

    args = command.split()[1:]  # drop "kubectl"
    args[-1] = str(crds)
    result = tools.kubectl(*args, "--dry-run=server", check=False)
    assert result.returncode == 0, result.stderr
    assert "usersecrets.usersecrets.io serverside-applied" in result.stdout


def test_the_uninstall_hook_deletes_copies_as_the_operator_image_with_the_least_rights(
    tools: Tools,
) -> None:
    docs = parse(render(tools, "un", "un-ns", "defaults"))
    hooks = [d for d in docs if "helm.sh/hook" in (d["metadata"].get("annotations") or {})]
    assert sorted(d["kind"] for d in hooks) == UNINSTALL_KINDS
    assert {d["metadata"]["annotations"]["helm.sh/hook"] for d in hooks} == {"post-delete"}
    job = one(hooks, "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["usersecrets-operator", "delete-copies"]
    assert (
        container["image"]
        == one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    role = one(hooks, "ClusterRole")
    assert [(r["resources"], r["verbs"]) for r in role["rules"]] == [
        (["secrets"], ["list", "delete"]),
    ]
    # The Lease in the release namespace only, by name but for create: never another Lease
    # of the cluster (a controller's, a node's).
    leases = one(hooks, "Role")
    assert leases["metadata"]["namespace"] == "un-ns"
    assert [(r["verbs"], r.get("resourceNames")) for r in leases["rules"]] == [
        (["create"], None),
        (["get", "update", "delete"], ["un-usersecrets-leader"]),
    ]
    assert one(hooks, "RoleBinding")["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "un-usersecrets-uninstall",
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["USERSECRETS_SHARDS"] == "1"


def test_one_leader_has_no_slot_webhook_and_may_not_write_a_usersecret(tools: Tools) -> None:
    """Shards off (the default): no webhook call is added to a UserSecret's write, and the
    operator may not patch UserSecrets (only their status); its one Lease is the leader's."""
    docs = parse(render(tools, "one", "one-ns", "defaults"))
    hooks = one(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert [hook["name"] for hook in hooks] == ["pods.usersecrets.io"]
    operator = named(docs, "ClusterRole", "one-usersecrets")
    rules = [r for r in operator["rules"] if "usersecrets" in r["resources"]]
    assert [r["verbs"] for r in rules] == [["get", "list", "watch"]]
    election = named(docs, "Role", "one-usersecrets-leader-election")
    leases = [r["resourceNames"] for r in election["rules"] if "resourceNames" in r]
    assert leases == [["one-usersecrets-leader"]]


def named(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
