"""Islands as Ray actors, on one machine or a cluster (``islands.ray_address``).

Each island is an actor holding its engine (problem, compiled evaluator) and its state;
it asks Ray for one GPU when the cluster has one per island (a share of one otherwise,
with JAX's memory preallocation off) and for a CPU, or a share of one, when it has none.
The driver, the ``evolve`` process, holds no island state: each generation it gets from
every actor a small report (metrics row, best programs, front) and passes object
references on. The islands' logs of the shared caches (``evolve.search.shared_cache``) go from
actor to actor through the object store; every actor keeps its own copy of the shared
caches and applies all the logs in island order, so the copies stay equal, and the run
equals the same run in one process.

Checkpoints: the driver asks every actor for its state's data and writes the one
checkpoint of the run (``evolve.runs.checkpoint.islands_to_data``), so island states pass
through the driver only then, and when a run is resumed.

Faults: when an actor dies (its process or its machine), a new one is started, loads
that island from the run's newest checkpoint and replays the generations since, with the
other islands' logs and the migrations it missed (kept by the driver as object
references and small data); since every step is deterministic, it arrives at the state
the dead actor had, and the run goes on. The other islands do not wait for more than
the replay. The restart is written to events.log.
"""

from __future__ import annotations

import logging
import socket
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from evolve.errors import UserError
from evolve.runs.checkpoint import (
    checkpoint_name,
    load_checkpoint,
    state_from_data,
    state_to_data,
    states_data,
)
from evolve.runs.config import RunConfig
from evolve.runs.islands.core import After, Island, Plan, Stepped, apply_logs, new_shared
from evolve.search.fec import FECache
from evolve.search.state import IslandsState

try:
    import ray
    from ray.exceptions import RayActorError
except ModuleNotFoundError as e:  # the optional extra is not installed
    if e.name != "ray":
        raise
    raise UserError("islands.ray_address (--ray-address) runs islands on Ray, which is not "
                    "installed; install it with pip install 'evolve[ray]', or leave "
                    "--ray-address out to run the islands in this process") from None

MAX_RESTARTS = 3  # restarts of one island for one call before the run gives up

# Called by the driver after it has sent a generation's steps to the actors, as
# ``after_submit(generation, actors)``: a place for tests to inject faults.
after_submit: Callable[[int, list], None] | None = None


class IslandActor:
    """One island in a Ray actor: the methods the driver calls (``RayIslands``)."""

    def __init__(self, config: RunConfig, index: int):
        import evolve  # (XLA flags before JAX starts)

        evolve.use_compilation_cache()
        from evolve.runs.config import run_problem
        from evolve.search.engine import Engine

        self.engine = Engine(run_problem(config), config.search)
        self.index, self.params = index, config.islands
        self.shared = new_shared(self.engine) if self.params.shared_cache else None
        self.island = Island(self.engine, index, self.params, self.shared)

    def ready(self) -> bool:
        return True

    def devices(self) -> list[str]:
        """The JAX devices this island computes on (what Ray gave the actor)."""
        import jax

        return [str(d) for d in jax.devices()]

    @ray.method(num_returns=2)
    def init(self, seed: int) -> tuple[Stepped, dict | None]:
        return self.island.init(seed)

    def load(self, arrays: dict, scalars: dict, shared: dict) -> bool:
        self.shared = {name: FECache.from_state(s) for name, s in shared.items()} or None
        self.island.shared = self.shared
        self.island.state = state_from_data(arrays, scalars, prefix=self._prefix(),
                                            shared=self.shared)
        return True

    @ray.method(num_returns=2)
    def step(self) -> tuple[Stepped, dict | None]:
        return self.island.step()

    def boundary(self, plan: Plan, *logs: dict | None) -> After:
        if self.shared is not None:
            apply_logs(self.shared, list(logs))
        return self.island.receive(plan)

    def data(self, with_shared: bool) -> tuple[dict, dict, dict]:
        arrays, scalars = state_to_data(self.island.state, prefix=self._prefix())
        shared = {n: c.to_state() for n, c in (self.shared or {}).items()} if with_shared else {}
        return arrays, scalars, shared

    def _prefix(self) -> str:
        return f"island.{self.index}."


_RemoteIsland = ray.remote(IslandActor)


_connected = False  # by connect(), so disconnect() ends it


def connect(address: str) -> None:
    """Connect to Ray: ``local`` starts a Ray instance on this machine, ``auto`` finds
    the running cluster, anything else is a cluster's address. A connection made before
    (``ray.init`` by a caller, or an earlier ``connect``) is used as it is."""
    global _connected
    if ray.is_initialized():
        return
    if address not in ("local", "auto"):
        _reachable(address)
    kwargs = {"include_dashboard": False, "logging_level": logging.WARNING}
    try:
        with warnings.catch_warnings():  # Ray starts its processes by fork + exec: harmless
            warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
            if address == "local":
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        detail = " ".join(str(e).split())[:200]
        raise UserError(f"cannot connect to Ray at {address!r} ({detail}); start a cluster "
                        "with `ray start --head` (docs/islands.md), or use "
                        "--ray-address local to start one here") from None
    _connected = True


def disconnect() -> None:
    """End the connection ``connect`` made (and the local Ray it started), if any."""
    global _connected
    if _connected:
        ray.shutdown()
        _connected = False


def _reachable(address: str, timeout: float = 10.0) -> None:
    """``UserError`` at once if nothing answers at ``address`` (Ray itself would retry
    for minutes)."""
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except ValueError:
        raise UserError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379), "
                        "'auto' or 'local'") from None
    except OSError as e:
        raise UserError(f"nothing answers at Ray address {address!r} ({e.strerror or e}); "
                        "start the cluster there with `ray start --head --port=PORT` "
                        "(docs/islands.md), or use --ray-address auto on a machine "
                        "of the cluster") from None


class RayIslands:
    """The islands of a run as Ray actors: the backend of ``evolve.runs.islands.core.IslandSearch``
    (``init``, ``load``, ``step``, ``boundary``, ``states``, ``data``, ``close``)."""

    def __init__(self, config: RunConfig, checkpoints: Path, log: Callable[[str], None]):
        self.config, self.params = config, config.islands
        self.checkpoints, self.log = Path(checkpoints), log
        connect(self.params.ray_address)
        self._name = uuid.uuid4().hex[:8]
        n = self.params.count
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
        self._options = {"num_cpus": min(1.0, cpus / n), "num_gpus": min(1.0, gpus / n),
                         "max_restarts": 0, "scheduling_strategy": "SPREAD"}
        if 0 < gpus < n:  # islands share GPUs: each takes memory as it needs it
            self._options["runtime_env"] = {"env_vars": {"XLA_PYTHON_CLIENT_PREALLOCATE":
                                                         "false"}}
        self.actors = [self._actor(i) for i in range(n)]
        self._completed = -1  # the last generation whose boundary every island has passed
        self._saved_at: int | None = None  # the generation of the run's newest checkpoint
        self._history: list[tuple[int, list, list[Plan]]] = []  # boundaries since then
        self._logs: list = []  # of the generation being stepped: object references
        self.restarts = 0

    def _actor(self, i: int):
        return _RemoteIsland.options(name=f"evolve-{self._name}-island-{i}",
                                     **self._options).remote(self.config, i)

    # -- faults ------------------------------------------------------------------------
    def _gather(self, refs: list, again: Callable[[int], object]) -> list:
        """``ray.get`` of each of ``refs``; where island i's actor died, restart it and get
        ``again(i)`` (the call submitted anew) instead."""
        out = []
        for i, ref in enumerate(refs):
            for attempt in range(MAX_RESTARTS + 1):
                try:
                    out.append(ray.get(ref))
                    break
                except RayActorError as e:
                    if attempt == MAX_RESTARTS:
                        raise RuntimeError(f"island {i}'s Ray actor died {attempt + 1} times "
                                           f"in a row; giving up ({e})") from None
                    self._restart(i, e)
                    ref = again(i)
        return out

    def _advance(self, i: int, generation: int):
        """Submit generation ``generation`` (0: the initial one) to island ``i``'s actor."""
        actor = self.actors[i]
        return actor.init.remote(self.config.seed) if generation == 0 else actor.step.remote()

    def _restart(self, i: int, error: Exception) -> None:
        """A new actor for island ``i``, brought to the last boundary every island passed:
        loaded from the run's newest checkpoint, then the generations since replayed."""
        try:
            ray.kill(self.actors[i])
        except Exception:  # noqa: BLE001  (gone already)
            pass
        self.restarts += 1
        self.actors[i] = self._actor(i)
        done = [self.actors[i].ready.remote()]
        where = "generation 0"
        if self._saved_at is not None:
            where = checkpoint_name(self._saved_at)
            state, _ = load_checkpoint(self.checkpoints / where)
            datas, shared = states_data(state.islands, state.shared)
            done.append(self.actors[i].load.remote(*datas[i], shared))
        for g, logs, plans in self._history:
            _, logs[i] = self._advance(i, g)  # the dead actor's log may be gone; this equals it
            done.append(self.actors[i].boundary.remote(plans[i], *logs))
        ray.get(done)
        reason = " ".join(str(error).split())[:160]
        self.log(f"island {i}'s Ray actor died ({reason}); restarted it from {where} and "
                 f"replayed {len(self._history)} generation(s)")

    # -- the backend -----------------------------------------------------------------------
    def init(self, seed: int) -> list[Stepped]:
        return self._step(0)

    def step(self, generation: int) -> list[Stepped]:
        return self._step(generation)

    def _step(self, generation: int) -> list[Stepped]:
        pending = [self._advance(i, generation) for i in range(len(self.actors))]
        if after_submit is not None:
            after_submit(generation, self.actors)
        self._logs = [log for _, log in pending]

        def again(i):
            report, self._logs[i] = self._advance(i, generation)
            return report

        return self._gather([report for report, _ in pending], again)

    def boundary(self, generation: int, plans: list[Plan]) -> list[After]:
        logs = self._logs

        def again(i):
            _, logs[i] = self._advance(i, generation)
            return self.actors[i].boundary.remote(plans[i], *logs)

        out = self._gather([a.boundary.remote(plans[i], *logs)
                            for i, a in enumerate(self.actors)], again)
        self._history.append((generation, list(logs), plans))
        self._completed = generation
        return out

    def load(self, state: IslandsState) -> None:
        self._completed = self._saved_at = state.generation
        self._history, self._logs = [], []
        datas, shared = states_data(state.islands, state.shared)
        shared_ref = ray.put(shared)

        def again(i):
            return self.actors[i].ready.remote()  # the restart loaded it

        self._gather([a.load.remote(*datas[i], shared_ref)
                      for i, a in enumerate(self.actors)], again)

    def states(self) -> tuple[None, None]:
        return None, None

    def data(self) -> tuple[list, dict]:
        outs = self._gather([a.data.remote(i == 0) for i, a in enumerate(self.actors)],
                            lambda i: self.actors[i].data.remote(i == 0))
        self._saved_at, self._history = self._completed, []
        return [(a, s) for a, s, _ in outs], outs[0][2]

    def close(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        disconnect()
