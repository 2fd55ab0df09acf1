"""What runs on every replica: the admission endpoint the apiserver calls, its TLS certificates,
and the metadata caches each review is answered from.
"""
