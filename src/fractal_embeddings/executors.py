"""Executors: run many independent tasks (``fn(*args)``) here or on a Ray cluster.

Both yield results as tasks finish, so a caller can save and report each one at once:

* :class:`LocalExecutor` -- in this process (``workers=1``) or a pool of spawned processes;
* :class:`RayExecutor` -- Ray tasks, on a local Ray started on demand or on the cluster at
  ``address`` (``ray://host:10001`` or ``auto``). The environment variables that pick the data
  home, the cache and offline mode travel with the tasks, so workers read the same data and cache.

``fn`` must be importable (a module-level function) and its arguments picklable.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

from .errors import FractalError

EXECUTORS = ("local", "ray")
# settings a worker must share with the driver
FORWARDED_ENV = ("FRACTAL_DATA", "FRACTAL_CACHE", "HF_HUB_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM",
                 "TRANSFORMERS_OFFLINE")


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise FractalError(f"--workers must be >= 1, got {workers}")
        self.workers = workers

    def imap_unordered(self, fn: Callable, tasks: Sequence[tuple]) -> Iterator:
        if self.workers == 1 or len(tasks) <= 1:
            for args in tasks:
                yield fn(*args)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child of a process whose onnxruntime / OpenMP thread pools are
        # running can deadlock; a spawned worker starts clean (and imports the library once)
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(fn, *args) for args in tasks]
            try:
                for f in as_completed(futures):
                    yield f.result()
            finally:
                for f in futures:
                    f.cancel()

    def close(self) -> None:
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_task: float = 1.0):
        try:
            import ray
        except ImportError:
            raise FractalError("--executor ray needs Ray: pip install 'fractal-embeddings[ray]'") from None
        self.ray = ray
        self.cpus_per_task = cpus_per_task
        self._started = False
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token files for a local throwaway cluster
            kwargs = {"include_dashboard": False, "log_to_driver": False, "runtime_env": {"env_vars": env}}
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
        if self._started:
            self.ray.shutdown()
            self._started = False


def get_executor(name: str = "local", *, workers: int = 1, ray_address: str | None = None):
    """``local`` (``workers`` processes) or ``ray`` (``workers`` CPUs for a local Ray, or the cluster
    at ``ray_address``)."""
    if name == "local":
        if ray_address:
            raise FractalError("--ray-address needs --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address=ray_address, num_cpus=None if ray_address else max(1, workers))
    raise FractalError(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")

