"""The only code that talks to the apiserver: requests as plain JSON, list+watch loops, the Lease.

Every caller (the controller, the webhook, the CLI and the web UI, each with its own
credentials) goes through `client.KubeApi`; kopf, which watches SecretGrants and Namespaces for
the controller, is the one exception, and keeps its own connection.
"""
