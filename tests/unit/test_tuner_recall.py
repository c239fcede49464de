"""recall@k by distance (ANN-benchmarks): hand-made cases with ties, gaps and repeats."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chroma_operator.tuner.recall import EPSILON, query_recalls, recall_at_k, threshold

INF = math.inf


def test_exact_answer_scores_one() -> None:
    assert recall_at_k([3.0], [np.array([1.0, 2.0, 3.0])], k=3) == 1.0


def test_ties_at_the_kth_distance_all_count() -> None:
    # True top-3 distances are 1, 2, 2; points at distance 2 are interchangeable, so an
    # answer that returns the *other* point at distance 2 is still perfect.
    true_kth = [2.0]
    other_tied = [[("a", 1.0), ("c", 2.0), ("d", 2.0)]]
    assert recall_at_k(true_kth, other_tied, k=3) == 1.0


def test_within_relative_epsilon_counts_beyond_does_not() -> None:
    kth = 100.0
    inside = kth * (1 + EPSILON * 0.5)
    outside = kth * (1 + EPSILON * 2)
    assert recall_at_k([kth], [np.array([1.0, inside])], k=2) == 1.0
    assert recall_at_k([kth], [np.array([1.0, outside])], k=2) == 0.5


def test_fewer_than_k_results_count_as_misses() -> None:
    # Two of four answered (an index over a tiny or filtered set); missing ones are NaN/inf.
    assert recall_at_k([4.0], [np.array([1.0, 2.0, INF, np.nan])], k=4) == 0.5
    assert recall_at_k([4.0], [[("a", 1.0)]], k=4) == 0.25
    assert recall_at_k([4.0], [[]], k=4) == 0.0


def test_repeated_ids_count_once() -> None:
    assert recall_at_k([2.0], [[("a", 1.0), ("a", 1.0), ("b", 2.0)]], k=3) == pytest.approx(2 / 3)


def test_more_than_k_results_are_cut_at_k() -> None:
    assert recall_at_k([2.0], [np.array([1.0, 9.0, 2.0])], k=2) == 0.5


def test_zero_distance_duplicates_survive_float_rounding() -> None:
    assert threshold([0.0])[0] > 0.0
    assert recall_at_k([0.0], [np.array([1e-9])], k=1) == 1.0


def test_per_query_values_and_mean() -> None:
    kth = [1.0, 1.0]
    found = np.array([[0.5, 1.0], [0.5, 5.0]])
    assert query_recalls(kth, found, k=2).tolist() == [1.0, 0.5]
    assert recall_at_k(kth, found, k=2) == 0.75
    assert recall_at_k([], np.empty((0, 2)), k=2) == 0.0
