"""Run many seeded consensus schedules and report schedules per second.

    python -m simulator.run --seeds 200 --validators 4,7
    python -m simulator.run --replay 1234 --profile lossy --validators 4
    python -m simulator.run --twins-views 2          # every n=4, f=1 Twins scenario over 2 views
    python -m simulator.run --twins 2 --twins-views 3 --static --until-violation
    python -m simulator.run --scripted               # the scripted timeout/epoch-rule attacks

A failing schedule prints its seed, profile and size, then a shrunk configuration that still
fails; exit status is 1 if any schedule failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from cybermesh.protocol.consensus.sim.byzantine import Fault
from cybermesh.protocol.consensus.sim.scenarios import SCENARIOS, run_scenario
from cybermesh.protocol.consensus.sim.twins import scenario_count, twins_config, twins_scenarios
from cybermesh.protocol.consensus.sim.world import SimConfig, SimResult, run_schedule

PROFILES: dict[str, SimConfig] = {
    "lossy": SimConfig(drop_per_mille=100, duplicate_per_mille=50, clock_skew_ms=300),
    "partitions": SimConfig(partitions=3, drop_per_mille=20),
    "crashes": SimConfig(crashes=3, crash_after_vote=True),
    "equivocate": SimConfig(faults=(Fault.EQUIVOCATE,), crashes=2, drop_per_mille=30),
    "byzantine-mix": SimConfig(faults=(Fault.DOUBLE_VOTE, Fault.FORGE, Fault.GARBAGE),
                               drop_per_mille=30),
    "stale-fork": SimConfig(faults=(Fault.STALE_FORK,), drop_per_mille=50, partitions=1),
    "silent": SimConfig(faults=(Fault.SILENT,)),
    "twins": SimConfig(twins=1, partitions=2),
    "reconfiguration": SimConfig(reconfigure_at_height=15, crashes=1),
}


def sized(profile: SimConfig, validators: int) -> SimConfig:
    f = (validators - 1) // 3
    faults = profile.faults[:f]
    twins = min(profile.twins, f - len(faults))
    return replace(profile, validators=validators, faults=faults, twins=max(0, twins),
                   heal_at_ms=3000)


def shrink(config: SimConfig, seed: int) -> SimConfig:
    """Greedily simplify a failing configuration while the same seed still fails."""
    candidates = [
        {"drop_per_mille": 0}, {"duplicate_per_mille": 0}, {"partitions": 0}, {"crashes": 0},
        {"clock_skew_ms": 0}, {"heal_at_ms": config.heal_at_ms // 2},
        {"partitions": max(0, config.partitions - 1)}, {"crashes": max(0, config.crashes - 1)},
    ]
    current = config
    for change in candidates:
        trial = replace(current, **change)  # type: ignore[arg-type]
        if trial != current and not run_schedule(trial, seed).ok:
            current = trial
    return current


def report_failure(result: SimResult, profile: str) -> None:
    print(f"FAILED profile={profile} n={result.config.validators} {result.summary()}")
    print(f"  replay: python -m simulator.run --replay {result.seed} --profile {profile} "
          f"--validators {result.config.validators}")
    print(f"  shrunk config: {shrink(result.config, result.seed)}")


def run_scripted() -> tuple[int, int]:
    """Each scripted attack with every rule on (must pass) and with its rule off (caught)."""
    runs = failures = 0
    for name, (_, rule) in SCENARIOS.items():
        for disabled in (frozenset(), frozenset({rule})):
            result = run_scenario(name, disabled)
            runs += 1
            caught = result.violation is not None
            failures += caught != bool(disabled)
            print(f"{result.summary()} -> {'WRONG' if caught != bool(disabled) else 'as expected'}")
    return runs, failures


def run_twins(twins: int, views: int, *, static: bool, until_violation: bool) -> tuple[int, int]:
    """Enumerate n=4 Twins scenarios; with ``until_violation``, stop at the first failure."""
    runs = failures = 0
    found = None
    for index, scenario in enumerate(twins_scenarios(4, twins, views, static=static)):
        result = run_schedule(twins_config(4, twins, scenario,
                                           check_liveness=not until_violation), index)
        runs += 1
        if not result.ok:
            failures += 1
            print(f"FAILED twins scenario {index}: {result.summary()} {scenario}")
            if until_violation:
                found = index
                break
    kind = "static partitions" if static else "every partition per view"
    total = scenario_count(4, twins, views, static=static)
    print(f"twins n=4 twins={twins} over {views} views ({kind}): explored {runs} of {total}")
    if until_violation:
        print("no violation found" if found is None else f"first violation at index {found}")
        failures = 0 if found is not None else 1
    return runs, failures


def run_seeds(profiles: list[str], sizes: list[int], seeds: range,
              replay: int | None) -> tuple[int, int]:
    runs = failures = 0
    if replay is not None:
        for profile in profiles:
            for size in sizes:
                result = run_schedule(sized(PROFILES[profile], size), replay)
                runs += 1
                print(f"profile={profile} n={size} {result.summary()}")
                failures += not result.ok
        return runs, failures
    for seed in seeds:
        profile = profiles[seed % len(profiles)]
        for size in sizes:
            result = run_schedule(sized(PROFILES[profile], size), seed)
            runs += 1
            if not result.ok:
                failures += 1
                report_failure(result, profile)
    return runs, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--validators", default="4,7")
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES))
    parser.add_argument("--replay", type=int)
    parser.add_argument("--twins-views", type=int, default=0,
                        help="enumerate every n=4 Twins scenario over this many views")
    parser.add_argument("--twins", type=int, default=1, help="twinned validators (f=1)")
    parser.add_argument("--static", action="store_true",
                        help="one partition for all scripted views (x every leader sequence)")
    parser.add_argument("--until-violation", action="store_true",
                        help="stop at the first violating scenario (for twins > f)")
    parser.add_argument("--scripted", action="store_true",
                        help="run each scripted attack with every rule on (must pass) and with "
                             "its rule off (must be caught)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.scripted:
        runs, failures = run_scripted()
    elif args.twins_views:
        runs, failures = run_twins(args.twins, args.twins_views, static=args.static,
                                   until_violation=args.until_violation)
    else:
        runs, failures = run_seeds(args.profile or sorted(PROFILES),
                                   [int(v) for v in args.validators.split(",")],
                                   range(args.first_seed, args.first_seed + args.seeds),
                                   args.replay)
    elapsed = time.perf_counter() - started
    print(f"{runs} schedules, {failures} failed, {elapsed:.1f}s, "
          f"{runs / elapsed:.1f} schedules/s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
