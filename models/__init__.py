"""torchship's models: the spec types, the open registry, and the three seed networks."""

from torchship.models.registry import entries, get_spec, load_spec_ref, register
from torchship.models.spec import BATCH, Axis, InputSpec, ModelSpec, OutputSpec, Recipe

__all__ = ["ModelSpec", "InputSpec", "OutputSpec", "Axis", "Recipe", "BATCH",
           "register", "get_spec", "entries", "load_spec_ref"]
