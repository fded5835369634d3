"""The open registry of model specs.

A spec joins in one of three ways, each recorded as its origin:
- an entry point in the `torchship.models` group of any installed package (the seed
  models register this way, from torchship's own pyproject.toml);
- `--spec module:attr` or `--spec path/to/file.py:NAME` on any command;
- `register(spec)` from Python.
An entry point or a `--spec` attribute may be a ModelSpec, a list or tuple of them, or
a callable returning either.
"""

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from torchship.errors import SpecError
from torchship.models.spec import ModelSpec

ENTRY_POINT_GROUP = "torchship.models"


@dataclass(frozen=True)
class Entry:
    spec: ModelSpec
    origin: str  # where it came from, for `export-model --list` and clash messages
    ref: str | None = None  # the --spec reference that loads it again (in a child process)


_entries: dict[str, Entry] = {}
_entry_points_loaded = False


def register(spec: ModelSpec, origin: str = "register()", ref: str | None = None) -> ModelSpec:
    """Add `spec`; a second, different spec under the same name is a SpecError."""
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"{origin}: expected a torchship ModelSpec, got {type(spec).__name__}")
    previous = _entries.get(spec.name)
    if previous is not None and previous.spec is not spec:
        raise SpecError(f"model {spec.name!r} from {origin} clashes with the one from {previous.origin}; "
                        "rename one of them")
    _entries.setdefault(spec.name, Entry(spec, origin, ref))
    return spec


def _register_all(value, origin: str, ref: str | None = None) -> list[ModelSpec]:
    if callable(value) and not isinstance(value, ModelSpec):
        try:
            value = value()
        except SpecError:
            raise
        except Exception as e:
            raise SpecError(f"{origin}: calling it failed: {type(e).__name__}: {e}") from None
    specs = list(value) if isinstance(value, (list, tuple)) else [value]
    return [register(spec, origin, ref) for spec in specs]


def load_entry_points() -> None:
    """Import every installed package's `torchship.models` entry points, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
        origin = f"entry point {ep.name} = {ep.value}{dist}"
        try:
            value = ep.load()
        except SpecError as e:
            raise SpecError(f"{origin}: {e.message}") from None
        except Exception as e:  # any import-time failure of someone else's package
            raise SpecError(f"{origin} failed to import: {type(e).__name__}: {e}") from None
        _register_all(value, origin)


def load_spec_ref(ref: str) -> list[ModelSpec]:
    """`module:attr` or `path/to/file.py:NAME` -> the specs it names, registered."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise SpecError(f"--spec {ref!r}: expected module:attr or path/to/file.py:NAME")
    origin = f"--spec {ref}"
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise SpecError(f"{origin}: no file {path}")
            module_name = f"torchship_user_spec_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
            module = sys.modules.get(module_name)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[module_name] = module  # dataclasses and pickling look it up there
                try:
                    loader_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[module_name]  # a second load must fail the same way
                    raise
        else:
            module = importlib.import_module(target)
    except SpecError:
        raise
    except Exception as e:
        raise SpecError(f"{origin} failed to import: {type(e).__name__}: {e}") from None
    if not hasattr(module, attr):
        raise SpecError(f"{origin}: {target} has no attribute {attr!r}")
    return _register_all(getattr(module, attr), origin, ref)


def entries() -> dict[str, Entry]:
    load_entry_points()
    return dict(_entries)


def get_spec(name: str) -> ModelSpec:
    known = entries()
    if name not in known:
        raise SpecError(f"unknown model {name!r}; known models: {', '.join(known) or 'none'}; "
                        "register yours with --spec module:attr or a torchship.models entry point")
    return known[name].spec
