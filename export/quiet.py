"""Keep torch's deprecation chatter out of the user's face: collect it, summarise once.

torch deprecates torch.jit (since 2.11); TorchScript is still a format libtorch loads, so
every export would otherwise print the same paragraphs. The ONNX exporter also prints
its progress to stdout, where it would mix with our tables and --json output.
"""

import contextlib
import io
import logging
import warnings
from collections import Counter
from typing import Iterator

_seen: Counter = Counter()


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    # torch.onnx: "torchvision is not installed. Skipping ..."; onnxscript: the traceback
    # of a failed opset conversion, which the exporter reports to us anyway.
    loggers = {name: logging.getLogger(name) for name in ("torch.onnx", "onnxscript")}
    levels = {name: logger.level for name, logger in loggers.items()}
    for logger in loggers.values():
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(levels[name])
    for w in caught:
        _seen[w.category.__name__] += 1


def summary() -> str | None:
    """One line about what was suppressed since the last summary, or None."""
    if not _seen:
        return None
    kinds = ", ".join(f"{n} {name}" for name, n in _seen.most_common())
    total = sum(_seen.values())
    _seen.clear()
    return (f"note: {total} torch warnings suppressed ({kinds}); torch deprecates torch.jit "
            "since 2.11, which stays a format libtorch loads")
