"""Every default and fixed value of the worker, each with the reason for it."""

# Topic names, record headers, retention and the record size limit are the contract's:
# contracts/wire.py.
GROUP_ID = "session-worker"
# Enough to amortise a batch's own requests and round trips (~1.6 ms of CPU each): 1,000 gave
# +3% commands/s on average over 500 in interleaved drains (within noise), 2,000 no more than
# 1,000. Small enough to finish within a rebalance (~70 ms of work).
BATCH_MAX_RECORDS = 1000
# Bytes of events the producer gathers per partition before a send waits. aiokafka keeps one
# open batch per partition and a send that finds it full waits until the request carrying it is
# acknowledged: with its default (16 KiB) a batch of 500 creates waited for ~3 produce round
# trips, 29 ms of each 89 ms batch. Capped at max_record_bytes, which topics accept twice over.
PRODUCER_BATCH_BYTES = 512 * 1024
POLL_TIMEOUT_MS = 200  # how long getmany waits for records before the loop checks for stop
# Sessions each replica remembers after changing them, so that their next command is decided
# without a read (~0.7 KB each with a typical snapshot, compressed: ~14 MB). A guess only:
# Redis checks every operation decided on it.
SESSION_CACHE_SIZE = 20_000
# A batch taking longer than this gets the worker thrown out of the group (Kafka's default, 5 min);
# batches shrink after that happens, so it happens once.
MAX_POLL_INTERVAL_MS = 300_000
# A replica that dies without leaving the group holds its partitions this long (aiokafka's
# default). The broker accepts 6 s to 300 s (group.min/max.session.timeout.ms).
SESSION_TIMEOUT_MS = 10_000
SHUTDOWN_GRACE_S = 20.0  # within Kubernetes' default 30 s termination grace, with margin
# Kafka silent (or the loop stuck) this long: exit so a supervisor restarts the worker, rather than
# stay alive and idle. Longer than a broker restart or a leader election takes.
LIVENESS_TIMEOUT_S = 60.0

SWEEP_INTERVAL_MS = 500  # expiry announced within ~0.5 s of expiresAt (the bound is 2 s)
# Due sessions claimed per bucket per sweep; a full bucket sweeps again at once. 32 of each of
# 256 buckets bounds a sweep at 8,192 sessions: a backlog of 100,000 (an outage, a burst) took
# +43 MB of RSS in passes of that size against +305 MB in one pass of 1000 per bucket, its first
# event came after 0.18 s instead of 2.09 s, and all were finished in 3.8 s instead of 5.2 s.
EXPIRY_BATCH_MAX = 32
# A claimed expiry not finished within this long (its sweeper died) is claimed again.
EXPIRY_LEASE_MS = 30_000

HTTP_PORT = 9464  # metrics and probes; Prometheus' registry of default ports lists 9464 as free
# Redis reachability for /readyz is checked this often; a result older than three intervals
# counts as unknown, so a stuck prober cannot keep a replica ready.
HEALTH_PROBE_INTERVAL_S = 5.0
REDIS_PROBE_TIMEOUT_S = 2.0  # a healthy PING takes milliseconds; longer means Redis is in trouble
# Live sessions and the expiry backlog are counted over all 256 bucket indexes (3 commands each,
# one pipelined round trip): every 15 s, Prometheus' usual scrape interval.
SAMPLE_INTERVAL_S = 15.0

# Redis is one server unless SW_REDIS_CLUSTER says it is a Redis Cluster; REDIS_URL then names
# any one node (the client reads the slot map from it). Off by default: the single-server
# client is what a plain Redis (or a proxy in front of a cluster) needs.
REDIS_CLUSTER = False
# With SW_REDIS_MIN_REPLICAS: how long a batch waits for its replicas before it fails (and is
# retried). A caught-up replica on the same network answers in well under a millisecond; one
# that takes a second is not keeping up, and the batch is better retried than held.
REDIS_REPLICA_TIMEOUT_MS = 1000

KEY_PREFIX = "sw"  # every Redis key starts with it, so a shared Redis can host other apps
# Session keys are spread over this many hash tags. Keys of one session and its bucket's expiry
# index share a tag, so each step is one atomic script even on Redis Cluster. Changing it
# re-homes every key: it is fixed, not a setting.
BUCKETS = 256

# After the TTL ran out, the meta record keeps the last snapshot this long so that the expiry
# event can still be emitted if no worker was running (7 days: Kafka's default retention, so an
# outage as long as the commands survive loses no expiry either).
EXPIRED_RETENTION_MS = 7 * 24 * 3600 * 1000
# A deleted or expired session's tombstone (version, owner, commandId marks) lives this long, so
# a late repeat of an old command is recognised instead of resurrecting the session.
TOMBSTONE_TTL_MS = 24 * 3600 * 1000
# Outbox entries are removed once their offsets are committed; the TTL only bounds what a crash
# between commit and clean-up leaves behind. As long as Kafka keeps the commands (7 days).
OUTBOX_TTL_MS = 7 * 24 * 3600 * 1000

SECRET_MARK = "[redacted]"  # noqa: S105 - a placeholder, not a password; what a credential is replaced with in snapshots, events and logs
