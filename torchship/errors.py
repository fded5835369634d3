"""torchship's typed errors: one base class, one subclass per kind of problem.

Every message is one line that says what was expected, what was found and what to
do. The library raises these; only the CLI turns them into `Error: ...` and an exit
code (see torchship.models.console.Command).
"""


class TorchshipError(Exception):
    """A problem the user can fix."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class SpecError(TorchshipError):
    """A model spec that is malformed, unknown, clashes with another, or fails to import."""


class CheckpointError(TorchshipError):
    """Weights that are missing, corrupt, or do not fit the model."""


class ContractError(TorchshipError):
    """Inputs or outputs that break a model's contract."""


class ArtifactError(TorchshipError):
    """An artifact file that is missing, malformed, tampered with or from elsewhere."""


class ExportError(TorchshipError):
    """A format that cannot be exported, or whose export does not match eager."""


class RunnerError(TorchshipError):
    """torchship-run is missing or refused its input (its own line is in the message)."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error from a library we call (torch, onnx, inductor),
    for a one-line message; its type name when it says nothing."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
