"""usersecrets: personal, shareable secrets for the users of a shared Kubernetes cluster."""

GROUP = "usersecrets.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
