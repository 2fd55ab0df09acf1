"""What one user does, with that user's own credentials: shared by the CLI and the web UI.

Nothing here has any power of its own: every call carries the user's kubeconfig or token, so
the apiserver's RBAC decides, as for kubectl.
"""
