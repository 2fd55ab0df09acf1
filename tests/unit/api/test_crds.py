"""The CRDs are structural, carry their CEL rules, and the committed files are up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from usersecrets.api import crds

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def _by_kind() -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd for crd in crds.build_crds()}


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = _by_kind()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("kind", ["UserSecret", "SecretGrant"])
def test_schema_is_structural(kind: str) -> None:
    for path, node in _walk(_schema(kind)):
        assert "type" in node, path
        for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "default", "const"):
            assert forbidden not in node, (path, forbidden)
        if "properties" in node:
            assert "additionalProperties" not in node, path
            assert node["type"] == "object", path
        if node["type"] == "string" and "x-kubernetes-validations" in node:
            assert "maxLength" in node, path  # CEL cost estimation needs a bound


@pytest.mark.parametrize("kind", ["UserSecret", "SecretGrant"])
def test_every_field_is_described(kind: str) -> None:
    for path, node in _walk(_schema(kind)):
        if path.endswith("[]") or path == ".metadata":
            continue
        assert node.get("description"), path


def test_usersecret_rules() -> None:
    schema = _schema("UserSecret")
    root_rules = schema["x-kubernetes-validations"]
    assert any("self.metadata.name.size() <= 63" in r["rule"] for r in root_rules)
    assert all("63 characters" in r["message"] for r in root_rules)
    spec = schema["properties"]["spec"]
    rules = {r["rule"]: r for r in spec["x-kubernetes-validations"]}
    assert "has(self.value) || has(self.valueFrom)" in rules
    assert "!(has(self.value) && has(self.valueFrom))" in rules
    (size,) = (rule for text, rule in rules.items() if "1048576" in text)
    assert size["fieldPath"] == ".value"
    assert "1 MiB" in size["message"]
    value = spec["properties"]["value"]
    # format: byte would make CEL decode with the URL-safe alphabet (kube-openapi#633).
    assert "format" not in value
    assert value["pattern"] == "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    assert value["maxLength"] == 1398104
    # A rule on the string itself would make the API server quote the secret in its error.
    assert "x-kubernetes-validations" not in value
    ref = spec["properties"]["valueFrom"]["properties"]["secretKeyRef"]
    assert set(ref["properties"]) == {"name", "key"}
    assert "x-kubernetes-preserve-unknown-fields" not in ref
    assert schema["required"] == ["spec"]
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_status_shape() -> None:
    status = _schema("UserSecret")["properties"]["status"]["properties"]
    assert set(status) == {"uri", "observedGeneration", "conditions", "namespaces", "copies"}
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}
    grant_status = _schema("SecretGrant")["properties"]["status"]["properties"]
    assert set(grant_status) == {"uri", "copies", "observedGeneration", "conditions"}


def test_grant_spec() -> None:
    spec = _schema("SecretGrant")["properties"]["spec"]
    assert spec["required"] == ["secretName", "user"]
    assert spec["properties"]["user"]["maxLength"] == 63
    assert spec["properties"]["user"]["minLength"] == 1


def test_names_columns_and_subresources() -> None:
    by_kind = _by_kind()
    usersecret, grant = by_kind["UserSecret"], by_kind["SecretGrant"]
    assert usersecret["metadata"]["name"] == "usersecrets.usersecrets.io"
    assert usersecret["spec"]["names"]["shortNames"] == ["usec"]
    assert grant["spec"]["names"]["shortNames"] == ["sgrant"]
    for crd in (usersecret, grant):
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["categories"] == ["usersecrets"]
        version = crd["spec"]["versions"][0]
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}

    def columns(crd: dict[str, Any]) -> list[str]:
        cols = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        return [c["name"] for c in cols if not c.get("priority")]

    assert columns(usersecret) == ["URI", "Ready", "Age"]
    assert columns(grant) == ["Secret", "User", "Ready", "Age"]


def test_names_the_api_is_reached_by() -> None:
    names = {kind: crd["spec"]["names"] for kind, crd in _by_kind().items()}
    assert {kind: (n["plural"], n["singular"], n["listKind"]) for kind, n in names.items()} == {
        "UserSecret": ("usersecrets", "usersecret", "UserSecretList"),
        "SecretGrant": ("secretgrants", "secretgrant", "SecretGrantList"),
    }


def test_committed_files_are_generated() -> None:
    """If this fails: python -m usersecrets.api.crds crds"""
    assert crds.stale(CRD_DIR) == []
    assert sorted(p.name for p in CRD_DIR.glob("usersecrets.io_*.yaml")) == sorted(crds.rendered())


def test_rendered_yaml_is_the_crd_with_a_header() -> None:
    for name, content in crds.rendered().items():
        assert content.startswith("# Generated by")
        [doc] = list(yaml.safe_load_all(content))
        assert crds.file_name(doc) == name
        assert doc in crds.build_crds()


def test_cli_writes_and_checks(tmp_path: Path) -> None:
    assert crds.main(["--check", str(tmp_path)]) == 1
    assert crds.main([str(tmp_path)]) == 0
    assert crds.main(["--check", str(tmp_path)]) == 0


def test_non_structural_models_are_refused() -> None:
    from pydantic import BaseModel

    class Union(BaseModel):
        field: int | str

    with pytest.raises(crds.SchemaError, match="union"):
        crds.structural_schema(Union)


def test_constants_maps_and_their_paths_in_errors() -> None:
    from typing import Literal

    from pydantic import BaseModel

    class Inner(BaseModel):
        mode: Literal["a"]

    class Outer(BaseModel):
        by_name: dict[str, Inner]

    schema = crds.structural_schema(Outer)
    inner = schema["properties"]["by_name"]["additionalProperties"]
    assert inner["properties"]["mode"] == {"type": "string", "enum": ["a"]}

    class Odd(BaseModel):
        odd: int = Field(json_schema_extra={"multipleOf": 2})

    class Nested(BaseModel):
        items: list[dict[str, Odd]] | None

    with pytest.raises(crds.SchemaError) as refused:
        crds.structural_schema(Nested)
    assert str(refused.value) == (
        "Nested.items[]{}.odd: JSON Schema keyword 'multipleOf' has no structural equivalent"
    )

    class Typeless(BaseModel):
        anything: object

    with pytest.raises(crds.SchemaError) as untyped:
        crds.structural_schema(Typeless)
    assert str(untyped.value) == "Typeless.anything: a structural schema needs a type"


def test_the_cli_says_what_it_wrote_and_what_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "a" / "b"
    assert crds.main([str(where)]) == 0
    names = sorted(crds.rendered())
    assert sorted(capsys.readouterr().out.split()) == [str(where / name) for name in names]
    (where / names[0]).write_text("changed")
    assert crds.main(["--check", str(where)]) == 1
    assert capsys.readouterr().err == (
        f"stale: {where / names[0]} (run python -m usersecrets.api.crds)\n"
    )
