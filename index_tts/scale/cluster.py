"""Joining Ray, sizing the engines on it, and service errors that survive the trip back.

"local" starts a Ray instance on this machine (no dashboard, a small object store: only voices
and rendered audio travel through it); anything else is the address of a running cluster
(`ray start --head` prints it). Every node needs this checkout and its venv at the same path;
docs/scale-out.md says how.
"""

from __future__ import annotations

from dataclasses import dataclass

from index_tts.engines.base import NothingToSpeak, UnusableReference
from index_tts.service import Cancelled, TimedOut, ValidationError

LOCAL = "local"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
CPUS_PER_CPU_ENGINE = 4  # a CPU engine uses several threads: by default one engine per 4 CPUs


def connect(address: str) -> bool:
    """Join the cluster at `address`, or start a local one for "local"; returns whether this call
    started Ray (and so whoever called it shuts it down). A process already connected stays so.

    Call it from the main thread when it may start Ray: Ray ties the processes it starts to the
    life of the starting *thread* (they get SIGKILL when that thread ends), so a local Ray started
    from a worker thread dies with the thread, and this process with it."""
    import ray

    if not isinstance(address, str) or not address.strip():
        raise ValueError("ray address: give 'local' or a cluster address such as 10.0.0.5:6379")
    if ray.is_initialized():
        return False
    if address == LOCAL:
        ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


@dataclass(frozen=True)
class Placement:
    """How many engines to run and what each one reserves."""

    engines: int
    num_gpus: int
    num_cpus: int


def placement(engines: int | None) -> Placement:
    """One engine per GPU when the cluster has GPUs (each reserving its GPU); otherwise CPU
    engines sharing the CPUs evenly (one per CPUS_PER_CPU_ENGINE CPUs unless `engines` says)."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if engines is not None and (isinstance(engines, bool) or not isinstance(engines, int) or engines < 1):
        raise ValueError(f"the number of Ray actors or replicas must be a whole number >= 1, got {engines!r}")
    if gpus:
        return Placement(engines or gpus, 1, 1)
    count = engines or max(1, cpus // CPUS_PER_CPU_ENGINE)
    return Placement(count, 0, max(1, cpus // count))


# -- errors -----------------------------------------------------------------------------------
# The service's and engines' errors take (field, message) and do not unpickle by themselves, so
# work done on an actor or replica returns them packed and the caller raises the same error here.

_REBUILD = {
    "ValidationError": lambda field, message: ValidationError(field, message.removeprefix(f"{field}: ")),
    "UnusableReference": UnusableReference,
    "NothingToSpeak": lambda field, message: NothingToSpeak(message),
    "Cancelled": lambda field, message: Cancelled(message),
    "TimedOut": lambda field, message: TimedOut(message),
}


def pack_error(error: BaseException) -> tuple[str, str, str]:
    """(kind, field, message): kind is "" for an error the caller cannot raise as itself."""
    kind = type(error).__name__
    if kind in _REBUILD:
        return kind, getattr(error, "field", ""), str(error)
    return "", "", f"{kind}: {error}"


def unpack_error(packed: tuple[str, str, str]) -> Exception:
    kind, field, message = packed
    if kind in _REBUILD:
        return _REBUILD[kind](field, message)
    return RuntimeError(f"on a Ray worker: {message}")
