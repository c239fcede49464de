"""Resharding: the phase machine, refusals, and what each phase means for the router."""

from __future__ import annotations

import pytest

from chroma_operator.reshard.plan import (
    PHASES,
    ReshardRefused,
    advance,
    begin,
    cleanup_shards,
    expected_moved_fraction,
    moves,
    source_shards,
    with_placement,
)
from chroma_operator.router.merge import keep_get_rows, keep_query_rows
from chroma_operator.router.placement import Routing, shard_for
from chroma_operator.topology import PlacementTopology, ShardTopology, Topology

IDS = [f"id-{i}" for i in range(5000)]


def stable(n: int, epoch: int = 0) -> PlacementTopology:
    return PlacementTopology(epoch=epoch, shards=n)


def walk(start: PlacementTopology, target: int) -> list[PlacementTopology]:
    p = begin(start, target)
    seen = [p]
    while p.phase != "stable":
        p = advance(p)
        seen.append(p)
    return seen


@pytest.mark.parametrize(("old", "new"), [(2, 3), (3, 2), (1, 4), (4, 1)])
def test_a_move_walks_every_phase_one_epoch_each(old: int, new: int) -> None:
    seen = walk(stable(old, epoch=7), new)
    assert [p.phase for p in seen] == [*PHASES, "stable"]
    assert [p.epoch for p in seen] == list(range(8, 8 + len(seen)))
    assert all(p.previous_shards == old for p in seen[:-1])
    assert seen[-1] == PlacementTopology(epoch=seen[-1].epoch, shards=new)


def test_refusals_name_the_reason() -> None:
    with pytest.raises(ReshardRefused, match="at least 1"):
        begin(stable(2), 0)
    mid = begin(stable(2), 3)
    with pytest.raises(ReshardRefused, match="from 2 to 3 shards is in progress"):
        begin(mid, 4)
    cut = advance(advance(advance(mid)))
    assert cut.phase == "cutover"
    with pytest.raises(ReshardRefused, match="cannot be reversed now"):
        begin(cut, 2)
    assert begin(mid, 3) == mid  # the same target again changes nothing
    assert begin(stable(2), 2) == stable(2)


@pytest.mark.parametrize("phase", ["dual-write", "backfill", "verify"])
def test_changing_back_before_cutover_reverses_to_a_cleanup(phase: str) -> None:
    p = PlacementTopology(epoch=4, shards=3, previous_shards=2, phase=phase)  # type: ignore[arg-type]
    back = begin(p, 2)
    assert back == PlacementTopology(epoch=5, shards=2, previous_shards=3, phase="cleanup")
    r = Routing.of(back)
    assert r.read_shards == 2 and r.write_counts == (2,) and not r.polluted
    assert cleanup_shards(3, 2) == [0, 1, 2]
    assert advance(back) == stable(2, epoch=6)


def owners(routing: Routing, record_id: str) -> set[int]:
    return {s for s, pos in routing.write_partition([record_id]).items() if pos}


@pytest.mark.parametrize(("old", "new"), [(2, 3), (3, 2)])
def test_writes_reach_both_owners_until_cutover_and_reads_stay_complete(old: int, new: int) -> None:
    for p in walk(stable(old), new):
        r = Routing.of(p)
        both = {"dual-write", "backfill", "verify", "cutover"}
        for record_id in IDS[:300]:
            want = {shard_for(record_id, new)}
            if p.phase in both:
                want.add(shard_for(record_id, old))
            assert owners(r, record_id) == want, (p.phase, record_id)
        reads_new = p.phase in {"cutover", "cleanup", "stable"}
        assert r.read_shards == (new if reads_new else old)
        # A shard is "polluted" exactly when it may hold copies it does not own under
        # the read count (from the other count): then it is filtered, so every id is
        # answered once, by its owner.
        other = old if r.read_shards == new else new
        for s in range(r.read_shards):
            foreign = any(
                shard_for(i, other) == s != shard_for(i, r.read_shards) for i in IDS[:2000]
            )
            assert (s in r.polluted) == (foreign and p.phase != "stable"), (p.phase, s)


def test_owned_filter_drops_copies_only_on_polluted_shards() -> None:
    r = Routing.of(PlacementTopology(epoch=3, shards=3, previous_shards=2, phase="cutover"))
    assert r.polluted == frozenset({0, 1})
    ids = IDS[:200]
    on0 = [i for i in ids if shard_for(i, 2) == 0]
    keep = r.owned(0, on0)
    assert keep is not None
    assert [on0[j] for j in keep] == [i for i in on0 if shard_for(i, 3) == 0]
    assert r.owned(2, on0) is None
    resp = {"ids": ["a", "b", "c"], "documents": ["A", "B", "C"], "embeddings": None}
    assert keep_get_rows(resp, [0, 2]) == {
        "ids": ["a", "c"],
        "documents": ["A", "C"],
        "embeddings": None,
    }
    q = {"ids": [["a", "b"], ["c"]], "distances": [[0.1, 0.2], [0.3]], "documents": None}
    assert keep_query_rows(q, [[1], []]) == {
        "ids": [["b"], []],
        "distances": [[0.2], []],
        "documents": None,
    }


@pytest.mark.parametrize(("old", "new"), [(2, 3), (3, 2), (3, 4), (4, 3), (1, 2), (2, 1)])
def test_only_the_predicted_fraction_moves_and_only_off_source_shards(old: int, new: int) -> None:
    moved = [i for i in IDS if moves(i, old, new)]
    frac = len(moved) / len(IDS)
    assert abs(frac - expected_moved_fraction(old, new)) < 0.03
    assert {shard_for(i, old) for i in moved} <= set(source_shards(old, new))


def topo(n: int) -> Topology:
    shards = [ShardTopology(index=i, endpoints=[f"http://s{i}"]) for i in range(n)]
    return Topology(cluster="c", namespace="ns", shards=shards)


def test_topology_lists_both_counts_shards_during_a_move_and_trims_after() -> None:
    t = topo(3)
    moving = with_placement(t, begin(t.current_placement(), 2))
    assert [s.index for s in moving.shards] == [0, 1, 2]
    done = with_placement(moving, PlacementTopology(epoch=9, shards=2))
    assert [s.index for s in done.shards] == [0, 1]
    grow = begin(topo(2).current_placement(), 3)
    with pytest.raises(ReshardRefused, match=r"needs shards 0\.\.2"):
        with_placement(topo(2), grow)
    extra = [ShardTopology(index=2, endpoints=["http://s2"])]
    assert len(with_placement(topo(2), grow, extra).shards) == 3
    assert Topology.from_json(moving.to_json()) == moving
    assert "placement" not in topo(2).to_json()
