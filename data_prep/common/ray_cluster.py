"""A Ray cluster as both tools use one: joined within seconds or refused (Ray itself retries a
dead address for minutes), its alive nodes, and a question asked on every one of them, so that a
node that cannot see a dataset is named before any work starts."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

from data_prep.common.cli import verbose
from data_prep.common.errors import DataPrepError

REACH_TIMEOUT_S = 5.0
ASK_TIMEOUT_S = 60.0


def check_reachable(address: str) -> None:
    """A clear error within seconds when nothing answers at ``address`` (``auto`` resolves as
    Ray resolves it)."""
    from ray._private.services import canonicalize_bootstrap_address_or_die

    if address.startswith("ray://"):
        target, origin = address.removeprefix("ray://"), address
    else:
        try:
            target = canonicalize_bootstrap_address_or_die(address)
        except ConnectionError as exc:
            raise DataPrepError(f"--address {address}: {exc} Start one with `ray start --head`, or leave --address "
                                "out to run on this machine") from None
        origin = address if address == target else f"{address} -> {target}"
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        raise DataPrepError(f"no Ray cluster answers at {origin} ({exc}): start it (`ray start --head`), check the "
                            "address (`ray status` on its head prints it), or leave --address out to run on this "
                            "machine") from None


def engine_log_level() -> int:
    """Ray's own lines on the user's screen: errors only, everything with --verbose (they are
    in Ray's log files either way)."""
    return logging.INFO if verbose() else logging.ERROR


def quiet_engine() -> None:
    """Keep Ray's and Ray Data's INFO and WARNING lines, and their Python warnings, off the
    screen unless --verbose: a run prints the kit's own lines (its plan, a progress bar, its
    figures). Errors are always shown."""
    import importlib
    import warnings

    importlib.import_module("ray.data")  # Ray Data installs its console handler on import

    level = engine_log_level()
    for name in ("ray", "ray.data"):
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, "stream", None) in (sys.stderr, sys.stdout):  # the console, not Ray's log files
                handler.setLevel(level)
    if not verbose():
        warnings.filterwarnings("ignore", module=r"ray(\.|$)")


def join(address: str) -> None:
    """Join the cluster at ``address``, Ray's own lines kept off the user's screen (quiet_engine)."""
    import ray

    if ray.is_initialized():
        return
    check_reachable(address)
    quiet_engine()
    ray.init(address=address, log_to_driver=False, logging_level=engine_log_level())
    quiet_engine()  # ray.init set up the "ray" logger's console again


def alive_nodes() -> list[dict[str, Any]]:
    """The cluster's alive nodes: node_id, address, manager_port, resources."""
    import ray

    return [
        {"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"), "manager_port": n.get("NodeManagerPort"),
         "resources": n.get("Resources", {})}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def node_label(node: dict[str, Any], host: str | None = None) -> str:
    """How a node is named to the user: its address and host, and the start of its id."""
    where = " ".join(part for part in (node.get("address"), f"({host})" if host else None) if part)
    return f"node {node['node_id'][:12]} at {where}" if where else f"node {node['node_id'][:12]}"


def _answer(question: Callable[..., str | None], *args: Any) -> tuple[str, str | None]:
    return socket.gethostname(), question(*args)


def ask_every_node(nodes: list[dict[str, Any]], question: Callable[..., str | None], *args: Any,
                   timeout_s: float = ASK_TIMEOUT_S) -> list[str]:
    """``question(*args)`` asked on each of ``nodes`` in a task pinned to it (no CPU reserved, so
    it runs at once); returns one line per node that answered with a problem or did not answer
    within ``timeout_s``, naming the node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_retries=0)(_answer)
    pending = {remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["node_id"], soft=False))
               .remote(question, *args): node for node in nodes}
    ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    problems = []
    for ref in ready:
        node = pending[ref]
        try:
            host, problem = ray.get(ref)
        except Exception as exc:  # the task itself failed there (a missing package, a dead worker)
            problems.append(f"{node_label(node)}: {type(exc).__name__}: {exc}".splitlines()[0])
            continue
        if problem:
            problems.append(f"{node_label(node, host)}: {problem}")
    for ref in late:
        ray.cancel(ref, force=True)
        problems.append(f"{node_label(pending[ref])}: no answer within {timeout_s:.0f} s")
    return problems
