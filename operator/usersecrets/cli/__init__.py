"""The `usersecrets` command, run by one user with that user's own kubeconfig."""
