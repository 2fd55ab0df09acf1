"""The custom resources: pydantic models, the single source of truth, and the CRDs made from them.

Nothing here talks to the apiserver; everything else may import it.
"""
