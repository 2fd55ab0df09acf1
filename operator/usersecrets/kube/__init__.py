"""The only code that talks to the apiserver: requests as plain JSON, list+watch loops, the Lease.

Every caller (the controller, the webhook, the CLI and the web UI, each with its own
credentials) goes through `client.KubeApi`, but for the controller's reconciles, which send
their requests from its event loop through `async_client.AsyncKubeApi`; kopf, which watches
SecretGrants and Namespaces for the controller, keeps its own connection.
"""
