"""Operator configuration, read once from USERSECRETS_* environment variables."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from usersecrets import SHARD_SLOTS

#: Secret types that are credentials of the cluster itself: a user may read a ServiceAccount
#: token of their namespace, but sharing it hands out a workload's identity.
CLUSTER_CREDENTIALS = ("kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")


class Settings(BaseSettings):
    """Everything a platform team may tune; the Helm chart sets these as env vars."""

    model_config = SettingsConfigDict(env_prefix="USERSECRETS_", frozen=True)

    cluster_name: str = Field(
        "default", description="This cluster's name in secret://CLUSTER/USER/KEY URIs."
    )
    user_label: str = Field(
        "usersecrets.io/user", description="Namespace label whose value is the namespace's user."
    )
    namespace_name_fallback: bool = Field(
        True, description="A namespace without the user label belongs to the user of its name."
    )
    system_namespaces: tuple[str, ...] = Field(
        ("kube-*",), description="Glob patterns of namespaces that never belong to a user."
    )
    operator_namespace: str = Field(
        "usersecrets-system", description="Where the operator runs; never a user's namespace."
    )
    value_from_refused_types: tuple[str, ...] = Field(
        CLUSTER_CREDENTIALS,
        description="Secret types a valueFrom may not name: credentials of the cluster itself.",
    )
    limit_secrets_per_user: int = Field(
        500, ge=1, description="UserSecrets a user may have materialized; the newest past it wait."
    )
    limit_mib_per_user: int = Field(
        64, ge=1, description="MiB of values a user's UserSecrets may hold together."
    )
    limit_grants_per_user: int = Field(500, ge=1, description="SecretGrants a user may make.")
    limit_shares_per_user: int = Field(
        500,
        ge=1,
        description="SecretGrants a user may receive (copies pushed into their namespaces).",
    )
    accept_shares_from: str = Field(
        "*",
        description="Whose shares a namespace takes when it has no usersecrets.io/accept-shares-"
        "from annotation: '*' anyone's, '' no one's, or a comma-separated list of users.",
    )
    quota_reserve_percent: int = Field(
        10,
        ge=0,
        le=100,
        description="Of a namespace's Secret quota, the share (at least one) that copies pushed "
        "by others never use: the user's own room.",
    )
    log_level: str = "INFO"
    resync_seconds: float = Field(
        300.0, description="Full re-reconciliation period, a safety net for missed events."
    )
    # Webhook serving.
    webhook_host: str = "0.0.0.0"  # noqa: S104  (a pod listens on its own IP)
    webhook_port: int = 8443
    webhook_config_name: str = Field(
        "usersecrets", description="MutatingWebhookConfiguration whose caBundle we keep current."
    )
    webhook_service: str = Field("usersecrets-webhook", description="Service in front of us.")
    webhook_cert_secret: str = Field(
        "usersecrets-webhook-tls", description="Secret holding our self-managed CA and cert."
    )
    webhook_cert_dir: str | None = Field(
        None, description="Serve tls.crt/tls.key from here (cert-manager) instead of our own."
    )
    webhook_client_ca_file: str | None = Field(
        None,
        description="Ask whoever calls the webhook for a client certificate and refuse, during "
        "the TLS handshake, any without one this PEM CA bundle signed (the kube-apiserver "
        "presents one when an AdmissionConfiguration gives it one).",
    )
    webhook_client_names: tuple[str, ...] = Field(
        (),
        description="With webhook_client_ca_file: the client certificate's subject CN or one of "
        "its DNS names must be one of these; empty accepts any certificate the CA signed.",
    )
    webhook_extra_hosts: tuple[str, ...] = Field(
        (), description="More names or IPs for our own certificate (an operator run locally)."
    )
    metrics_port: int = 8080
    shutdown_delay_seconds: float = Field(
        3.0,
        ge=0,
        description="After SIGTERM, how long the webhook still answers while the apiserver "
        "learns that this replica is going (its Service endpoint is removed).",
    )
    workers: int = Field(8, description="Secrets whose copies are reconciled in parallel.")
    status_workers: int = Field(
        2, description="Secrets whose statuses are written in parallel (fewer: copies go first)."
    )
    dry_run: bool = Field(
        False, description="Compute and log every change, write none (server-side dry run)."
    )
    leader_election: bool = True
    lease_name: str = Field(
        "usersecrets-leader", description="The Lease of the leader; with shards, its prefix."
    )
    shards: int = Field(
        1,
        ge=1,
        le=SHARD_SLOTS,
        description="Leaders that share the owners between them, each with a Lease of its own: "
        "for clusters too large for one (README, 'Shards'). Needs leader election, "
        "and at least as many replicas.",
    )
    lease_seconds: int = Field(
        15,
        description="A standby takes the Lease once it has seen its record unchanged for this "
        "long, on its own monotonic clock (never by comparing the holder's renewTime with its "
        "wall clock).",
    )
    lease_renew_seconds: float = Field(5.0, description="How often the leader renews.")

    @model_validator(mode="after")
    def _shards_are_elected(self) -> Settings:
        if self.shards > 1 and not self.leader_election:
            raise ValueError("shards > 1 needs leader_election: each shard has a Lease")
        return self
