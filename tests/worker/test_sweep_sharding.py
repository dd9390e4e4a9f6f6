"""Sweepers on several replicas split the expiry buckets by the partitions they own (pure)."""

from worker.constants import BUCKETS
from worker.expiry import ALL_BUCKETS, buckets_of_partitions


def test_owners_of_all_partitions_cover_every_bucket_exactly_once() -> None:
    partitions = 12
    owners = [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    shares = [set(buckets_of_partitions(owned, partitions)) for owned in owners]
    assert sum(len(s) for s in shares) == BUCKETS
    assert set().union(*shares) == set(range(BUCKETS))


def test_one_replica_sweeps_everything_and_an_unknown_topic_too() -> None:
    assert buckets_of_partitions(range(6), 6) == ALL_BUCKETS
    assert buckets_of_partitions([], 0) == ALL_BUCKETS
    assert buckets_of_partitions([], 6) == ()
