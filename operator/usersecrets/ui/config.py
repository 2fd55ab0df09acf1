"""The web UI's settings, from USERSECRETS_UI_* environment variables (the chart sets them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from usersecrets.kube.credentials import in_cluster_server

IN_CLUSTER_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"


class UiSettings(BaseSettings):
    """Where the apiserver is and how sessions behave. Nothing here is a credential."""

    model_config = SettingsConfigDict(env_prefix="USERSECRETS_UI_", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104  (a pod listens on its own IP)
    port: int = 8000
    api_server: str = Field(
        default_factory=lambda: in_cluster_server() or "",
        description="The apiserver's URL; in a pod, the kubernetes Service.",
    )
    api_ca_file: str | None = Field(
        default_factory=lambda: IN_CLUSTER_CA if Path(IN_CLUSTER_CA).is_file() else None,
        description="CA bundle that signed the apiserver's certificate (None: system CAs).",
    )
    session_idle_seconds: float = Field(
        1800.0, gt=0, description="A session unused this long is over."
    )
    session_max_seconds: float = Field(
        43200.0, gt=0, description="A session is over this long after sign-in, used or not."
    )
    max_sessions: int = Field(10000, gt=0, description="Sessions kept at once (oldest go).")
    secure_cookies: bool = Field(
        True, description="Cookies only over HTTPS (false only for plain-HTTP development)."
    )
    proxy_sign_out_url: str = Field(
        "/oauth2/sign_out",
        description="Where 'Sign out' leads when an authenticating proxy sent the token.",
    )
