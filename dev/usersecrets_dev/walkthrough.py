"""What `make run` tells a newcomer to paste: alice adds a secret and shares it with bob, who
lists it and runs a Job that uses it. The test suite runs these very lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usersecrets_dev.images import BUSYBOX

KEY = "wandb-token"
VALUE = "s3cr3t"
JOB = "hello"


@dataclass(frozen=True)
class Person:
    """A sample user: their name, and a kubeconfig whose context is their namespace."""

    name: str
    kubeconfig: Path


def commands(
    alice: Person, bob: Person, *, node: bool, tolerations: Sequence[dict[str, Any]] = ()
) -> str:
    """Shell lines a person can paste as they are. With a node, bob's Job prints the digest of
    the value twice (its file and its variable), the digest the last line prints; without
    one, its pod is admitted with the secret wired in and never runs. `tolerations`: of the
    Job's pod, for a node that takes only some pods."""
    ref = f"secret:/{alice.name}/{KEY}"
    pod_tolerations = f"\n      tolerations: {json.dumps(list(tolerations))}" if tolerations else ""
    lines = [
        f"ALICE={alice.kubeconfig} BOB={bob.kubeconfig}",
        f'usersecrets --kubeconfig "$ALICE" secret add {KEY} {VALUE}',
        f'usersecrets --kubeconfig "$ALICE" share secret:{KEY} {bob.name} --wait',
        f'usersecrets --kubeconfig "$BOB" acl list          # {ref}',
        f"""kubectl --kubeconfig "$BOB" create -f - <<'YAML'
apiVersion: batch/v1
kind: Job
metadata: {{name: {JOB}}}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        usersecrets.io/volumes: {ref}:/var/secrets/wandb.txt
        usersecrets.io/env: WANDB_API_KEY={ref}
    spec:
      restartPolicy: Never
      securityContext: {{runAsUser: 1000}}{pod_tolerations}
      containers:
        - name: main
          image: {BUSYBOX}   # built by `make run`, never pulled
          imagePullPolicy: Never
          command:
            - sh
            - -c
            - sha256sum < /var/secrets/wandb.txt; printf %s "$WANDB_API_KEY" | sha256sum
YAML""",
    ]
    if node:
        lines += [
            f'kubectl --kubeconfig "$BOB" wait job/{JOB} --for=condition=Complete --timeout=120s',
            f'kubectl --kubeconfig "$BOB" logs job/{JOB}          # twice the digest of:',
            f"printf %s {VALUE} | sha256sum",
        ]
    else:
        lines += [
            f"kubectl --kubeconfig \"$BOB\" wait job/{JOB} --for=jsonpath='{{.status.active}}'=1",
            f'kubectl --kubeconfig "$BOB" get pods -l job-name={JOB} '
            "-o jsonpath='{.items[0].spec.containers[0].env}'   # the secret, wired in",
        ]
    return "\n".join(lines) + "\n"
