"""Executors: run many independent tasks (``fn(*args)``) here or on a Ray cluster.

Both yield results as tasks finish, so a caller can save and report each one at once:

* :class:`LocalExecutor` -- in this process (``workers=1``) or a pool of spawned processes;
* :class:`RayExecutor` -- Ray tasks, on a local Ray started on demand or on the cluster at
  ``address`` (``ray://host:10001`` or ``auto``). The environment variables that pick the data
  home, the cache and offline mode travel with the tasks, so workers read the same data and cache.

``fn`` must be importable (a module-level function) and its arguments picklable.

Workers never outlive the process that started them: a pool worker asks the kernel to kill it when
its parent dies (Linux ``PR_SET_PDEATHSIG``) and watches its parent's pid (every platform), and a
pool whose caller stops iterating early (an error, Ctrl+C) terminates its workers instead of letting
them run the queued tasks. A local Ray started here is shut down on exit (``atexit``) and on
SIGTERM (the previous handler is restored, then called).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import FractalError
from .extras import require

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor
    from types import FrameType

EXECUTORS = ("local", "ray")
# settings a worker must share with the driver
FORWARDED_ENV = (
    "FRACTAL_DATA",
    "FRACTAL_CACHE",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "TOKENIZERS_PARALLELISM",
    "TRANSFORMERS_OFFLINE",
)


# ------------------------------------------------------------------ pool workers die with their parent
_PARENT_PID: int | None = None  # set in pool workers: the pid of the process that started the pool
WATCHDOG_S = 1.0


def _die_with_parent_linux() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``)."""
    import ctypes
    import ctypes.util

    PR_SET_PDEATHSIG = 1
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watchdog below still ends the worker


def orphaned() -> bool:
    """True in a pool worker whose parent (the driver that started the pool) is gone."""
    return _PARENT_PID is not None and os.getppid() != _PARENT_PID


def _watch_parent() -> None:
    import time

    while True:
        time.sleep(WATCHDOG_S)
        if orphaned():
            os._exit(1)  # noqa: SLF001 - no cleanup: the driver that wanted the results is gone


# a worker shares the cores with the other workers: idle OpenMP / onnxruntime threads sleep instead of
# spinning (read by OpenMP when torch is first imported, so set before that; the caller's value wins)
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _worker_init(parent_pid: int) -> None:
    """Pool worker initializer: die with the parent (kernel signal on Linux, a pid watchdog everywhere),
    and wait passively (:data:`WORKER_ENV`; the worker has not imported torch yet)."""
    global _PARENT_PID
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    _PARENT_PID = parent_pid
    if sys.platform.startswith("linux"):
        _die_with_parent_linux()
    if orphaned():  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, name="fractal-parent-watchdog", daemon=True).start()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (a task that is running is abandoned)."""
    # before shutdown(), which drops the executor's references to them (there is no public handle
    # before Python 3.14's terminate_workers())
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join(1)


class LocalExecutor:
    """A pool of ``workers`` spawned processes on this machine (or this process when ``workers`` is 1).

    The pool starts with the first parallel :meth:`imap_unordered` and is kept for the next ones until
    :meth:`close`: the sweeps of ``fractal experiment all`` share their workers (each spawned worker
    imports torch and the library and builds its datasets and encoders once, not once per sweep)."""

    name = "local"

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise FractalError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: Any = None

    def _get_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child of a process whose onnxruntime / OpenMP thread pools are
            # running can deadlock; a spawned worker starts clean (and imports the library once)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return self._pool

    def imap_unordered(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator:
        if self.workers == 1 or len(tasks) <= 1:
            for args in tasks:
                yield fn(*args)
            return
        from concurrent.futures import as_completed

        pool = self._get_pool()
        finished = False
        try:
            futures = [pool.submit(fn, *args) for args in tasks]
            for f in as_completed(futures):
                yield f.result()
            finished = True
        finally:
            if not finished:  # the caller stopped early (an error, Ctrl+C, a closed generator): no queued
                self._pool = None  # task runs on, and a later call starts a fresh pool
                _stop_pool(pool)

    def close(self) -> None:
        """End the workers (after the tasks they run)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_task: float = 1.0):
        require("ray", "--executor ray")
        import ray

        self.ray = ray
        self.cpus_per_task = cpus_per_task
        self._started = False
        self._previous_sigterm: Any = None
        self._sigterm_installed = False
        previous = self._current_sigterm()
        env = {**WORKER_ENV, **{k: os.environ[k] for k in (*FORWARDED_ENV, *WORKER_ENV) if k in os.environ}}
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token files for a local throwaway cluster
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "runtime_env": {"env_vars": env},
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except Exception as e:  # noqa: BLE001 - Ray raises many kinds; one line for the user
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                raise FractalError(f"could not start {where}: {str(e).splitlines()[0]}") from None
            self._started = True
            self._previous_sigterm = previous  # ray.init replaces it with its own; ours restores this one
            atexit.register(self.close)
            self._install_sigterm()

    @staticmethod
    def _current_sigterm() -> Any:  # a handler: a callable, SIG_DFL / SIG_IGN, or None
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            return signal.getsignal(signal.SIGTERM)
        except (ValueError, AttributeError):
            return None

    def _install_sigterm(self) -> None:
        """On SIGTERM: shut the local Ray down, restore the handler that was there before, and let it act."""
        if threading.current_thread() is not threading.main_thread() or self._previous_sigterm is None:
            return

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            previous = self._previous_sigterm
            self.close()  # restores ``previous``
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signum)  # the default action (terminate), now that Ray is down
            # SIG_IGN: ignored, as before

        try:
            signal.signal(signal.SIGTERM, on_sigterm)
            self._sigterm_installed = True
        except (ValueError, OSError):
            pass

    def imap_unordered(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator:
        ray = self.ray
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=1)(fn)
        pending = [remote.remote(*args) for args in tasks]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Shut down the local Ray started here (a cluster joined at ``address`` is left running) and
        restore the SIGTERM handler found before it started."""
        if self._started:
            self._started = False
            try:
                self.ray.shutdown()
            finally:
                atexit.unregister(self.close)
                if self._sigterm_installed and threading.current_thread() is threading.main_thread():
                    with contextlib.suppress(ValueError, OSError, TypeError):
                        signal.signal(signal.SIGTERM, self._previous_sigterm)
                    self._sigterm_installed = False


def get_executor(
    name: str = "local", *, workers: int = 1, ray_address: str | None = None
) -> LocalExecutor | RayExecutor:
    """``local`` (``workers`` processes) or ``ray`` (``workers`` CPUs for a local Ray, or the cluster
    at ``ray_address``)."""
    if name == "local":
        if ray_address:
            raise FractalError("--ray-address needs --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address=ray_address, num_cpus=None if ray_address else max(1, workers))
    raise FractalError(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")
