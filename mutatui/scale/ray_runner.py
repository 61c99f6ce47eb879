"""`mutatui screen --ray`: one screen split into parts and run by Ray actors, one per GPU.

The driver splits the plan into N parts (`plan.Shard` K/N, many more parts than workers, so
work balances and a retry is cheap) and records them in the database's part ledger. Each
worker is a Ray actor that loads the model once and grades whole parts; the driver alone
writes the database, one transaction per finished part holding its rows and its ledger mark,
so a part is written once however often it was computed. The driver never loads the model:
the first worker to start gives the probes' baselines and the matrices, and every other
worker must give the same baselines or the screen stops.

A worker that dies (killed, out of memory, its node lost) is restarted by Ray up to
`MAX_RESTARTS` times and loads the model again; the parts it held go back to the front of the
queue. A worker that cannot come back is dropped and the others finish its parts. If every
worker is gone, the screen ends interrupted and `--ray --resume` continues it.

Ray is imported here only, when a Ray screen runs: the base install does not need it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType

from mutatui import process
from mutatui.engine.models import ModelOptions
from mutatui.errors import MutatuiError
from mutatui.scale.worker import PartResult, ScreenWorker, WorkerInfo
from mutatui.screening.plan import SHARD_CHUNK, WHOLE, Shard
from mutatui.screening.progress import ScreenProgress, Silent
from mutatui.screening.runner import (
    ScreenReport,
    ScreenRun,
    check_baselines,
    check_new_screen,
    claim_screen,
    new_screen,
)
from mutatui.screening.spec import ScreenSpec
from mutatui.store import parts as ledger
from mutatui.store import screens as store
from mutatui.store.database import initialize, writer_lock
from mutatui.store.engines import record_engine
from mutatui.store.machines import record_machine
from mutatui.store.merge import reorder_screen

PART_SIZE = 512
"""Mutations per part when the number of parts is not given."""
PARTS_PER_WORKER = 4
"""At least this many parts per worker, so that work balances."""
IN_FLIGHT = 2
"""Parts queued on each worker: the next one starts while the driver writes the last."""
MAX_RESTARTS = 3
"""How often Ray restarts a dead worker before the driver gives up on it."""
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024
"""The object store of a local cluster: parts' rows are small."""
REACH_SECONDS = 10.0
"""How long to try to reach a cluster's address before giving up."""


@dataclass(frozen=True)
class RayRun:
    """Where and how wide to run (none of it changes the results)."""

    address: str | None = None
    """A running cluster (`ray start --head` prints it; `auto`), or None for a local one."""
    workers: int | None = None
    """Default: one per GPU of the cluster, else one per `cpus_per_worker` CPUs."""
    parts: int | None = None
    """Default: about `PART_SIZE` mutations each, at least `PARTS_PER_WORKER` per worker."""
    cpus_per_worker: int = 1
    model: ModelOptions = field(default_factory=ModelOptions)


@dataclass(frozen=True)
class RayEvent:
    """What happened to a worker: `started`, `part` (a part committed), `died` (its parts
    requeued, a restart pending) or `lost` (dropped for good)."""

    kind: str
    worker: int
    info: WorkerInfo | None = None
    part: int | None = None
    requeued: tuple[int, ...] = ()
    running: tuple[int, ...] = ()
    """On a `part` event: the worker's other parts still being computed (not yet returned)."""
    message: str = ""


EventHook = Callable[[RayEvent], None]


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise MutatuiError(
            "--ray needs Ray, an optional extra: pip install 'mutatui[ray]'"
        ) from None
    return ray


def default_parts(total: int, workers: int) -> int:
    """About `PART_SIZE` mutations per part and at least `PARTS_PER_WORKER` parts per worker,
    but no part smaller than one shard chunk (smaller parts would be empty)."""
    chunks = max(1, math.ceil(total / SHARD_CHUNK))
    wanted = max(math.ceil(total / PART_SIZE), PARTS_PER_WORKER * workers)
    return max(1, min(wanted, chunks))


@contextmanager
def connected(ray: ModuleType, ray_run: RayRun) -> Iterator[None]:
    """Connect to `ray_run.address`, or start a local cluster; disconnect (or stop it) after."""
    options = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if ray_run.address:
            _check_reachable(ray_run.address)
            ray.init(address=ray_run.address, **options)
        else:
            workers = ray_run.workers or max(1, (os.cpu_count() or 1) // ray_run.cpus_per_worker)
            ray.init(
                num_cpus=workers * ray_run.cpus_per_worker,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                **options,
            )
    except ConnectionError as error:
        raise MutatuiError(f"cannot reach the Ray cluster at {ray_run.address}: {error}") from None
    try:
        with process.handling_stops():  # SIGTERM ends the run through `finally` blocks
            yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Fail at once on a cluster address nothing listens on (`ray.init` would retry for
    minutes). `auto` and addresses without a port are left to Ray."""
    host, _, port = address.rpartition("://")[2].rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=REACH_SECONDS).close()
    except OSError as error:
        raise MutatuiError(
            f"cannot reach the Ray cluster at {address}: {error.strerror or error}"
        ) from None


def run_screen_on_ray(
    spec: ScreenSpec | None,
    run: ScreenRun,
    ray_run: RayRun,
    progress: ScreenProgress | None = None,
    *,
    name: str | None = None,
    on_event: EventHook | None = None,
) -> ScreenReport:
    """Run (or resume) a screen into `run.db` on Ray. `spec` may be None only when resuming."""
    ray = import_ray()
    if run.shard != WHOLE:
        raise MutatuiError("--ray splits the spec into parts itself; drop --shard")
    with writer_lock(run.db):
        spec, record = claim_screen(run, spec, name, on_ray=True)
        if record is not None:
            found = ledger.load_ledger(run.db, record.screen_id)
            if found is not None and not found.pending:
                return _already_done(run, record, found)
        with connected(ray, ray_run):
            driver = _Driver(ray, spec, run, ray_run, record, progress or Silent(), on_event)
            return driver.drive()


def _already_done(run: ScreenRun, record: store.ScreenRecord, found: ledger.Ledger) -> ScreenReport:
    """A resumed screen whose parts are all in (its driver died at the very end): put its rows
    in id order and mark it complete, starting no worker."""
    reorder_screen(run.db, record.screen_id)
    store.set_status(run.db, record.screen_id, "complete")
    return ScreenReport(
        record.screen_id,
        record.name,
        "complete",
        found.done_mutations,
        record.planned_mutations or found.done_mutations,
        store.phenotype_count(run.db, record.screen_id),
    )


@dataclass
class _Worker:
    handle: object
    info: WorkerInfo | None = None
    starting: bool = True
    lost: bool = False
    in_flight: int = 0


class _Driver:
    """The loop: start workers, feed them parts, write what comes back, requeue what is lost."""

    def __init__(
        self,
        ray: ModuleType,
        spec: ScreenSpec,
        run: ScreenRun,
        ray_run: RayRun,
        record: store.ScreenRecord | None,
        progress: ScreenProgress,
        on_event: EventHook | None,
    ) -> None:
        self.ray = ray
        self.spec = spec
        self.run = run
        self.ray_run = ray_run
        self.record = record
        self.progress = progress
        self.on_event = on_event or (lambda event: None)
        self.workers: list[_Worker] = []
        self.pending: dict[object, tuple[int, int | None]] = {}
        self.queue: deque[int] = deque()
        self.parts = 0
        self.total = self.done = self.phenotypes = 0
        self.screen_id: int | None = None
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        self.count = ray_run.workers or self.gpus or max(1, cpus // ray_run.cpus_per_worker)

    # -- workers ---------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """One actor per worker: a GPU each when the cluster has GPUs, else CPUs only (and as
        many torch threads as CPUs)."""
        actor = self.ray.remote(
            num_cpus=self.ray_run.cpus_per_worker,
            num_gpus=1 if self.gpus else 0,
            max_restarts=MAX_RESTARTS,
            max_task_retries=0,  # the driver requeues a dead worker's parts itself
        )(ScreenWorker)
        threads = None if self.gpus else self.ray_run.cpus_per_worker
        for index in range(self.count):
            handle = actor.remote(self.spec, self.ray_run.model, self.run.batch_size, threads)
            self.workers.append(_Worker(handle))
            self._submit_start(index)

    def _submit_start(self, index: int) -> None:
        worker = self.workers[index]
        worker.starting = True
        self.pending[worker.handle.start.remote()] = (index, None)

    def _started(self, index: int, info: WorkerInfo) -> None:
        worker = self.workers[index]
        if self.screen_id is None:
            self._open_screen(info)
        else:
            self._check_worker(info)
        worker.info = info
        worker.starting = False
        self.on_event(RayEvent("started", index, info))

    def _check_worker(self, info: WorkerInfo) -> None:
        assert self.record is not None
        if info.planned != self.record.planned_mutations:
            raise MutatuiError(
                f"Ray worker {info.label} plans {info.planned} mutations, not "
                f"{self.record.planned_mutations} (another model on that node?); screen stopped"
            )
        try:
            check_baselines(self.run, self.record, info.probe_rows)
        except MutatuiError:
            raise MutatuiError(
                f"Ray worker {info.label} gives other baselines than the screen's (another "
                "model, dtype or GPU type on that node?); screen stopped"
            ) from None

    def _died(self, index: int, part: int | None, error: Exception) -> None:
        """A call failed because its worker died: requeue the part, and ask the worker to
        start again (Ray restarts it, unless its restarts are used up)."""
        worker = self.workers[index]
        requeued: tuple[int, ...] = ()
        if part is not None:
            worker.in_flight -= 1
            self.queue.appendleft(part)
            requeued = (part,)
        elif isinstance(error, self.ray.exceptions.ActorDiedError):
            worker.lost = True  # restarts used up: never fed again
            self.on_event(RayEvent("lost", index, worker.info, message=_first_line(error)))
            return
        self.on_event(
            RayEvent("died", index, worker.info, part, requeued, message=_first_line(error))
        )
        worker.info = None
        if part is None or not worker.starting:
            self._submit_start(index)

    # -- the screen ------------------------------------------------------------------------

    def _open_screen(self, info: WorkerInfo) -> None:
        """Create the screen from the first worker's baselines (or check a resumed one's), and
        its part ledger; queue the parts not done yet."""
        run, spec = self.run, self.spec
        if self.record is None:
            initialize(run.db)  # only now: every input was checked, the first worker ran
            check_new_screen(run.db, spec)
            screen_id = store.create_screen(
                run.db,
                new_screen(spec, None, info.planned),
                info.probe_rows,
                info.matrix_rows,
            )
            self.record = store.find_screen(run.db, spec.display_name)
            record_engine(run.db, screen_id, info.engine)
        else:
            screen_id = self.record.screen_id
            self._check_worker(info)
            store.set_status(run.db, screen_id, "running")
        self.screen_id = screen_id
        found = ledger.load_ledger(run.db, screen_id)
        if found is None:
            parts = self.ray_run.parts or default_parts(info.planned, self.count)
            sizes = [Shard(k, parts).size(info.planned) for k in range(1, parts + 1)]
            ledger.create_ledger(run.db, screen_id, parts, sizes)
            found = ledger.load_ledger(run.db, screen_id)
            assert found is not None
        self.parts = found.parts
        self.queue.extend(sorted(found.pending))
        self.total = info.planned
        self.done = found.done_mutations
        self.phenotypes = store.phenotype_count(run.db, screen_id)
        self.progress.start(self.total, self.done, self.phenotypes)

    def _feed(self, index: int) -> None:
        worker = self.workers[index]
        if worker.starting or worker.lost or self.screen_id is None:
            return
        while self.queue and worker.in_flight < IN_FLIGHT:
            part = self.queue.popleft()
            self.pending[worker.handle.run_part.remote(part, self.parts)] = (index, part)
            worker.in_flight += 1

    def _finished(self, index: int, result: PartResult) -> None:
        worker = self.workers[index]
        worker.in_flight -= 1
        assert self.screen_id is not None and worker.info is not None
        written = ledger.write_part(
            self.run.db,
            self.screen_id,
            result.part,
            result.mutations,
            result.results,
            seconds=result.seconds,
            worker=worker.info.label,
            noise=result.noise,
        )
        if written:
            record_machine(self.run.db, self.screen_id, worker.info.machine)
            self.done += len(result.mutations)
            self.phenotypes += result.phenotypes
            self.progress.advance(len(result.mutations), result.phenotypes)
        self.on_event(
            RayEvent("part", index, worker.info, result.part, running=self._running(index))
        )

    def _running(self, index: int) -> tuple[int, ...]:
        held = {ref: part for ref, (i, part) in self.pending.items() if i == index and part}
        if not held:
            return ()
        _, not_ready = self.ray.wait(list(held), num_returns=len(held), timeout=0)
        return tuple(sorted(held[ref] for ref in not_ready))

    def _parts_left(self) -> bool:
        return bool(self.queue) or any(part is not None for _, part in self.pending.values())

    def drive(self) -> ScreenReport:
        status = "interrupted"
        try:
            self._start_workers()
            while self.screen_id is None or self._parts_left():
                if not self.pending:
                    raise MutatuiError(
                        "every Ray worker is gone; the screen is interrupted (resume it with "
                        "--ray --resume)"
                    )
                (ref,), _ = self.ray.wait(list(self.pending), num_returns=1)
                index, part = self.pending.pop(ref)
                try:
                    value = self.ray.get(ref)
                except self.ray.exceptions.RayActorError as error:
                    self._died(index, part, error)
                    for other in range(len(self.workers)):
                        self._feed(other)
                    continue
                except self.ray.exceptions.RayTaskError as error:
                    if isinstance(error.cause, MutatuiError):
                        raise MutatuiError(f"a Ray worker failed: {error.cause}") from None
                    raise
                if part is None:
                    self._started(index, value)
                else:
                    self._finished(index, value)
                for other in range(len(self.workers)):
                    self._feed(other)
            reorder_screen(self.run.db, self.screen_id)
            status = "complete"
        finally:
            for worker in self.workers:
                self.ray.kill(worker.handle)
            if self.screen_id is not None:
                self.progress.stop()
                store.set_status(self.run.db, self.screen_id, status)
        return ScreenReport(
            self.screen_id,
            self.spec.display_name,
            status,
            self.done,
            self.total,
            self.phenotypes,
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
