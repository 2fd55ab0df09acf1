"""usersecrets: personal, shareable secrets for the users of a shared Kubernetes cluster."""

GROUP = "usersecrets.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: Owners are hashed into this many slots, and shards take slots (rules.sharding): the most
#: shards there can be. Here, not in settings: the CLI computes copy labels, and loading
#: pydantic-settings for a constant took 0.12 s of its start.
SHARD_SLOTS = 64
