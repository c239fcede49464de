"""The resharding phase machine, pure: which placement comes next and what is refused.

A move from N to M shards walks the placement through one epoch per phase:
dual-write -> backfill -> verify -> cutover -> cleanup -> stable. Each step bumps the
epoch, and the driver advances only once every router reports the current one.
Changing the target back to N before cutover reverses the move (straight to a cleanup
of the copies already made); after cutover it is refused until the move has finished.
"""

from __future__ import annotations

from chroma_operator.router.placement import shard_for
from chroma_operator.topology import PlacementPhase, PlacementTopology, ShardTopology, Topology

PHASES: tuple[PlacementPhase, ...] = ("dual-write", "backfill", "verify", "cutover", "cleanup")
BEFORE_CUTOVER: frozenset[str] = frozenset({"dual-write", "backfill", "verify"})


class ReshardRefused(ValueError):
    """A shard-count change that cannot be applied now; the message says why."""


def moving(p: PlacementTopology) -> bool:
    return p.previous_shards is not None and p.phase != "stable"


def check_target(current: PlacementTopology, target: int) -> None:
    """Refuse a target that is invalid or that conflicts with a move in progress."""
    if target < 1:
        raise ReshardRefused(f"shards must be at least 1 (got {target})")
    if not moving(current) or target == current.shards:
        return
    old = current.previous_shards
    if target == old and current.phase in BEFORE_CUTOVER:
        return
    if target == old:
        raise ReshardRefused(
            f"the move from {old} to {current.shards} shards has cut over (phase "
            f"{current.phase}); it cannot be reversed now -- change shards back to {old} "
            "once it has finished"
        )
    raise ReshardRefused(
        f"a move from {old} to {current.shards} shards is in progress (phase "
        f"{current.phase}); wait until it finishes before changing shards to {target}"
    )


def begin(current: PlacementTopology, target: int) -> PlacementTopology:
    """The placement that starts (or reverses) a move to `target` shards."""
    check_target(current, target)
    if moving(current) and target == current.previous_shards:
        # Reverse: reads never left the old placement, so only the copies need deleting.
        return PlacementTopology(
            epoch=current.epoch + 1,
            shards=target,
            previous_shards=current.shards,
            phase="cleanup",
        )
    if moving(current) or target == current.shards:
        return current
    return PlacementTopology(
        epoch=current.epoch + 1,
        shards=target,
        previous_shards=current.shards,
        phase="dual-write",
    )


def advance(p: PlacementTopology) -> PlacementTopology:
    """The next phase's placement (cleanup is followed by a stable placement)."""
    if not moving(p):
        return p
    i = PHASES.index(p.phase)
    if i + 1 < len(PHASES):
        return p.model_copy(update={"epoch": p.epoch + 1, "phase": PHASES[i + 1]})
    return PlacementTopology(epoch=p.epoch + 1, shards=p.shards)


def shard_span(p: PlacementTopology) -> int:
    """How many shards the topology lists under `p` (both counts' shards during a move)."""
    return max(p.shards, p.previous_shards or 0) if moving(p) else p.shards


def with_placement(
    topology: Topology, p: PlacementTopology, new_shards: list[ShardTopology] | None = None
) -> Topology:
    """`topology` under placement `p`: shards added from `new_shards`, or trimmed when done."""
    shards = sorted(topology.shards, key=lambda s: s.index)
    span = shard_span(p)
    known = {s.index for s in shards}
    for extra in new_shards or []:
        if extra.index not in known and extra.index < span:
            shards.append(extra)
    shards = sorted((s for s in shards if s.index < span), key=lambda s: s.index)
    if [s.index for s in shards] != list(range(span)):
        raise ReshardRefused(
            f"placement over {span} shards needs shards 0..{span - 1}, "
            f"have {[s.index for s in shards]}"
        )
    return topology.model_copy(update={"shards": shards, "placement": p})


def moves(record_id: str, old: int, new: int) -> bool:
    """Whether a record changes owner going from `old` to `new` shards."""
    return shard_for(record_id, old) != shard_for(record_id, new)


def expected_moved_fraction(old: int, new: int) -> float:
    """What jump hash predicts: growing moves (new-old)/new, shrinking (old-new)/old."""
    if old == new:
        return 0.0
    return (new - old) / new if new > old else (old - new) / old


def source_shards(old: int, new: int) -> list[int]:
    """Shards that can hold records moving away (jump hash only moves off these)."""
    return list(range(old)) if new > old else list(range(new, old))


def cleanup_shards(old: int, new: int) -> list[int]:
    """Shards that may hold records they do not own under `new`: every old shard.

    In a shrink that includes the shards being removed, so that afterwards every record
    lives on exactly one shard, its owner.
    """
    return list(range(old))
