"""Manifests and contracts checked against export/schema/ before anything indexes into them."""

import json
from functools import cache
from importlib.resources import files
from pathlib import Path

from torchship.errors import ArtifactError


def _schema(name: str) -> dict:
    return json.loads((files("torchship.export") / "schema" / name).read_text())


@cache
def _validator(name: str):
    import jsonschema
    from referencing import Registry, Resource

    contract = _schema("contract.schema.json")  # the manifest refers to it by its $id
    registry = Registry().with_resource(contract["$id"], Resource.from_contents(contract))
    return jsonschema.Draft202012Validator(_schema(name), registry=registry)


def check_contract(contract, where: str, fix: str) -> None:
    """One line naming the first field of `contract` that breaks contract.schema.json."""
    _check("contract.schema.json", contract, where, fix)


def check_manifest(manifest, path: Path, fix: str) -> None:
    _check("manifest.schema.json", manifest, str(path), fix)


def _check(schema: str, document, where: str, fix: str) -> None:
    error = next(iter(sorted(_validator(schema).iter_errors(document), key=lambda e: list(e.path))), None)
    if error is not None:
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ArtifactError(f"{where}: field {field}: {_short(error.message)}; {fix}")


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
