"""Systematic Twins scenarios ("Twins: BFT Systems Made Robust", Bano et al.).

A faulty validator is run as two instances with one key (twins). A scenario fixes, for each of
the first ``views`` views, a partition of all instances into at most two groups (messages sent
by an instance in view v reach only its group in v's partition) and the leader of that view.
After the scripted views the network heals. Enumerating every partition x leader choice per view
over several views covers the equivocation patterns that random sampling rarely hits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from cybermesh.protocol.consensus.sim.world import SimConfig, TwinsScenario, validator_ids


def two_way_partitions(count: int) -> list[tuple[frozenset[int], ...]]:
    """Every partition of ``range(count)`` into one or two non-empty groups (2**(count-1))."""
    out: list[tuple[frozenset[int], ...]] = []
    for mask in range(1 << (count - 1)):
        first = frozenset(i for i in range(count) if i == count - 1 or mask >> i & 1)
        second = frozenset(range(count)) - first
        out.append((first, second) if second else (first,))
    return out


def scenario_count(validators: int, twins: int, views: int, *, static: bool = False) -> int:
    partitions = len(two_way_partitions(validators + twins))
    if static:
        return int(partitions * validators**views)
    return int((partitions * validators)**views)


def twins_scenarios(validators: int, twins: int, views: int, *,
                    static: bool = False) -> Iterator[TwinsScenario]:
    """All scenarios, in a fixed order (so an index names a scenario).

    ``static``: one partition for all the scripted views (each paired with every leader
    sequence), the sub-space where a partition lasts long enough for both sides to commit;
    otherwise every partition x leader choice per view.
    """
    ids = validator_ids(validators)
    if static:
        for partition in two_way_partitions(validators + twins):
            for leaders in itertools.product(ids, repeat=views):
                yield TwinsScenario(views=tuple((partition, leader) for leader in leaders))
        return
    per_view = list(itertools.product(two_way_partitions(validators + twins), ids))
    for combination in itertools.product(per_view, repeat=views):
        yield TwinsScenario(views=tuple(combination))


def twins_config(validators: int, twins: int, scenario: TwinsScenario,
                 **overrides: object) -> SimConfig:
    """A fast, loss-free configuration in which only the scenario's partitions interfere."""
    settings: dict[str, object] = {
        "validators": validators, "twins": twins, "scenario": scenario,
        "faulty_ids": tuple(validator_ids(validators)[:twins]),
        "delay_min_ms": 1, "delay_max_ms": 3, "base_timeout_ms": 20, "max_timeout_ms": 80,
        "heal_at_ms": 400 * len(scenario.views), "liveness_commits": 2,
        "liveness_bound_ms": 4_000,
    }
    settings.update(overrides)
    return SimConfig(**settings)  # type: ignore[arg-type]
