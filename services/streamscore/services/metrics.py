"""Prometheus metrics of the streaming services: one set of names, bounded label values.

Label values come from closed sets (service names, topic names of the
catalogue, DLQ reason codes, outcome names, the kind of policy path) — never
event ids, entity keys or free text — so the number of series stays bounded
(FAULTS S7). Each process serves them on ``/metrics`` (loopback by default).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

#: Latency buckets (seconds) fitted to the budgets: p50 ≤ 3 ms, p99 ≤ 10-25 ms end to end.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Consume lag (seconds) reaches minutes when a backlog builds: the latency buckets and beyond.
LAG_BUCKETS = (*LATENCY_BUCKETS, 10.0, 30.0, 60.0, 300.0, 900.0)


def path_kind(policy_path: str) -> str:
    """The bounded kind of a policy path: ``model``, ``rule`` or ``degraded``.

    >>> path_kind("rule:amount_over_limit"), path_kind("degraded:no_score+budget_exhausted")
    ('rule', 'degraded')
    """
    return policy_path.split(":", 1)[0]


def degraded_kind(reason: str) -> str:
    """The bounded kind of a degraded reason (``no_score``, ``features``, ...).

    >>> degraded_kind("features:OUTSIDE_MAX_AGE:customer_tx")
    'features'
    """
    return reason.split(":", 1)[0].split("+", 1)[0]


class StreamMetrics:
    """Metrics of the consume → handle → produce → commit loop."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.consumed = Counter(
            "streamscore_messages_consumed_total",
            "Messages consumed.",
            ["service", "topic"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "streamscore_dead_letters_total",
            "Messages sent to a DLQ, by reason.",
            ["service", "topic", "reason"],
            registry=registry,
        )
        self.produced = Counter(
            "streamscore_records_produced_total",
            "Records produced and acknowledged.",
            ["service", "topic"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "streamscore_batch_size",
            "Messages per micro-batch.",
            ["service"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "streamscore_stage_seconds",
            "Time per micro-batch stage (decode, handle, produce_ack, commit).",
            ["service", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_failures = Counter(
            "streamscore_commit_failures_total",
            "Commits refused (rebalance).",
            ["service"],
            registry=registry,
        )
        self.halted = Counter(
            "streamscore_processing_halted_total",
            "Batches whose records were not all acknowledged (service stops, fail closed).",
            ["service"],
            registry=registry,
        )
        self.last_commit = Gauge(
            "streamscore_last_commit_timestamp_seconds",
            "When the service last committed.",
            ["service"],
            registry=registry,
        )
        self.consume_lag = Histogram(
            "streamscore_consume_lag_seconds",
            "From a record's Kafka timestamp to its consumption (wall clock), per input topic.",
            ["service", "topic"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.lag_records = Gauge(
            "streamscore_consumer_lag_records",
            "Records behind the partition's high watermark after the last batch (as last fetched).",
            ["service", "topic", "partition"],
            registry=registry,
        )


def exported_names() -> set[str]:
    """Every series name the services export (for checking rules and dashboards).

    >>> "streamscore_decision_latency_seconds_bucket" in exported_names()
    True
    """
    registry = CollectorRegistry()
    StreamMetrics(registry)
    DecisionMetrics(registry)
    FeatureMetrics(registry)
    ApiMetrics(registry)
    MonitorMetrics(registry)
    JoinerMetrics(registry)
    RetrainerMetrics(registry)
    names = {mf.name for mf in registry.collect()}
    # Counters are exported as <name>_total, histograms as <name>_bucket/_count/_sum.
    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_created")
    return {n + s for n in names for s in suffixes}


class DecisionMetrics:
    """Metrics of decisions: mix, paths, degraded share, latency, model serving."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.decisions = Counter(
            "streamscore_decisions_total",
            "Decisions by outcome and kind of path.",
            ["stream", "decision", "path"],
            registry=registry,
        )
        self.degraded = Counter(
            "streamscore_degraded_decisions_total",
            "Decisions taken on a degraded path.",
            ["stream", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "streamscore_decision_latency_seconds",
            "From the input record's Kafka timestamp to the decision.",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.missing_values = Counter(
            "streamscore_missing_feature_values_total",
            "Model input cells that were missing (NaN, never 0).",
            ["stream"],
            registry=registry,
        )
        self.model_info = Gauge(
            "streamscore_model_serving_info",
            "1 for the model version serving a stream.",
            ["stream", "model_version"],
            registry=registry,
        )
        self.model_refusals = Counter(
            "streamscore_model_refusals_total",
            "Active model references not adopted (the current model kept serving), by reason: "
            "a loader refusal code (hash_mismatch, schema_mismatch, ...), load_error, "
            "reference_mismatch or store_unreadable.",
            ["stream", "reason"],
            registry=registry,
        )
        self.exposure = Gauge(
            "streamscore_degraded_exposure_last_minute",
            "Sum of degraded approvals' exposure over the last minute.",
            ["stream"],
            registry=registry,
        )
        self.capacity_downgrades = Counter(
            "streamscore_capacity_downgrades_total",
            "Alerts downgraded to the first outcome: outside the day's top alerts_per_day.",
            ["stream"],
            registry=registry,
        )
        self.capacity_unavailable = Counter(
            "streamscore_capacity_unavailable_total",
            "Batches whose daily capacity could not be read (not enforced: fail open on workload).",
            ["stream"],
            registry=registry,
        )
        self.shadow_decisions = Counter(
            "streamscore_shadow_decisions_total",
            "Decisions of the shadow policy beside the active one's, by both outcomes.",
            ["stream", "active", "shadow"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "streamscore_decision_stage_seconds",
            "Time per micro-batch inside the decision handler, by stage: feature_read (fused "
            "pipeline: features updated and read from Redis), model (predict), policy (the "
            "rest of deciding: rules, capacity, reasons, decision records).",
            ["stream", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Model rollout (champion / challenger): per model version, bounded by the versions
        # serving at once (a champion and at most one challenger per stream).
        self.rollout_decisions = Counter(
            "streamscore_rollout_decisions_total",
            "Decisions while a challenger is set, by role (champion, challenger), model version, "
            "whether they were published (live: decision topic; shadow: shadow topic) and outcome.",
            ["stream", "role", "model_version", "route", "decision"],
            registry=registry,
        )
        self.rollout_model_seconds = Histogram(
            "streamscore_rollout_model_seconds",
            "Model call time per (sub-)batch while a challenger is set, by role and version.",
            ["stream", "role", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rollout_errors = Counter(
            "streamscore_rollout_errors_total",
            "Challenger rows not decided by the challenger (predict_error: the champion decided "
            "them) and challengers not adopted (a loader refusal code), by version.",
            ["stream", "model_version", "reason"],
            registry=registry,
        )
        self.challenger_info = Gauge(
            "streamscore_challenger_info",
            "The challenger a scorer runs, by version and mode; the value is the canary share.",
            ["stream", "model_version", "mode"],
            registry=registry,
        )
        self.model_rollbacks = Counter(
            "streamscore_model_rollbacks_total",
            "Canary challengers rolled back automatically by the judge, by the first bound "
            "broken (error_rate, latency, decision_rate, precision).",
            ["stream", "reason"],
            registry=registry,
        )


class FeatureMetrics:
    """Metrics of the feature processors and of online/offline agreement."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.events = Counter(
            "streamscore_feature_events_total",
            "Events by what the processor did: computed, duplicate (re-emitted), dead_lettered.",
            ["stream", "outcome"],
            registry=registry,
        )
        self.late = Counter(
            "streamscore_feature_late_events_total",
            "Events later than the grace period: not merged, features read at the watermark.",
            ["group"],
            registry=registry,
        )
        self.labels = Counter(
            "streamscore_feature_labels_total",
            "Labels by outcome (applied, duplicate, too_old, unplaced).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.conflicts = Counter(
            "streamscore_feature_state_conflicts_total",
            "Batches recomputed because another process changed a watched entity.",
            ["stream"],
            registry=registry,
        )
        self.store_errors = Counter(
            "streamscore_feature_store_errors_total",
            "Redis errors; the batch is retried and nothing is committed meanwhile.",
            ["stream"],
            registry=registry,
        )
        self.latency = Histogram(
            "streamscore_feature_latency_seconds",
            "From the event's Kafka timestamp to its feature record acknowledged.",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.mismatch = Gauge(
            "streamscore_feature_mismatch_ratio",
            "Share of events whose online value differs from the offline recomputation.",
            ["stream", "feature"],
            registry=registry,
        )


class ApiMetrics:
    """Metrics of the HTTP API's synchronous scoring (route = the stream: a closed set)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            "streamscore_api_score_requests_total",
            "Synchronous scoring requests by stream and HTTP status.",
            ["stream", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "streamscore_api_score_seconds",
            "Synchronous scoring: request received to response ready (decisions acknowledged).",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "streamscore_api_scored_events_total",
            "Events decided through the API, by how their features were obtained.",
            ["stream", "features"],
            registry=registry,
        )
        self.store_circuit = Gauge(
            "streamscore_api_store_circuit_state",
            "The API's circuit breaker on the feature store: 0 closed, 0.5 half-open, 1 open.",
            registry=registry,
        )
        self.store_circuit_opened = Counter(
            "streamscore_api_store_circuit_opened_total",
            "Times the API's breaker on the feature store opened (the store failed in a row).",
            registry=registry,
        )
        self.batch = Histogram(
            "streamscore_api_score_batch_events",
            "Events decided together (concurrent requests coalesced into one batch).",
            ["stream"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )


class JoinerMetrics:
    """Metrics of the label joiner and of the realised performance it reports.

    ``model_version`` values are the versions whose examples are in the report
    window (series of versions leaving it are removed); ``metric`` and
    ``cohort`` come from closed sets.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.inputs = Counter(
            "streamscore_joiner_inputs_total",
            "Scored records, labels and state transitions by outcome (scored, scored_duplicate, "
            "scored_late, label_applied, label_duplicate, label_orphaned, label_too_late, "
            "label_expired, label_untargeted, orphan_joined, orphan_expired, matured, closed).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.examples = Counter(
            "streamscore_joiner_examples_total",
            "Labelled examples committed to examples.labelled, by kind and lateness.",
            ["stream", "kind", "late"],
            registry=registry,
        )
        self.pending = Gauge(
            "streamscore_joiner_pending_events",
            "Scored events waiting for a label or their horizon.",
            ["stream"],
            registry=registry,
        )
        self.held = Gauge(
            "streamscore_joiner_held_events",
            "Records held in Redis (pending, or joined and kept for corrections until closed).",
            ["stream"],
            registry=registry,
        )
        self.orphans = Gauge(
            "streamscore_joiner_orphan_labels",
            "Labels kept for events not seen yet.",
            ["stream"],
            registry=registry,
        )
        self.watermark = Gauge(
            "streamscore_joiner_watermark_seconds",
            "The joiner's clock: newest scored event time minus the allowed lateness.",
            ["stream"],
            registry=registry,
        )
        self.commits = Counter(
            "streamscore_joiner_commits_total",
            "Kafka transactions committed (examples and offsets together).",
            ["stream"],
            registry=registry,
        )
        self.realised = Gauge(
            "streamscore_realised_performance",
            "Realised model performance from joined labels: cohort=realised over matured days "
            "of the report window, cohort=estimate over days whose labels are not all in yet.",
            ["stream", "model_version", "metric", "cohort"],
            registry=registry,
        )


class MonitorMetrics:
    """Metrics of the drift monitor (labels: streams, signal kinds, and the plan's bounded
    segments and signals)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.alerts = Counter(
            "streamscore_drift_alerts_total",
            "Alerts published to alerts.drift, by kind (drift, retrain_trigger) and the kind "
            "of their first signal (score, decision_rate, missing_rate, feature).",
            ["stream", "kind", "signal"],
            registry=registry,
        )
        self.detections = Counter(
            "streamscore_drift_detections_total",
            "Changes confirmed by a detector (before incidents, cooldowns and the rate cap).",
            ["stream", "signal"],
            registry=registry,
        )
        self.suppressed = Counter(
            "streamscore_drift_suppressed_total",
            "Detections not alerted: cooldown (same segment and signal alerted recently) or "
            "rate_cap (too many alerts this minute).",
            ["stream", "reason"],
            registry=registry,
        )
        self.statistic = Gauge(
            "streamscore_drift_statistic",
            "Last detector input per test: the slot's standardised difference with its "
            "baseline (about N(0, 1) while nothing changes).",
            ["stream", "segment", "signal"],
            registry=registry,
        )
        self.tests = Gauge(
            "streamscore_monitor_tests",
            "Tests (segment x signal) by phase: warming (settle, baseline, reference) or testing.",
            ["stream", "phase"],
            registry=registry,
        )
        self.watermark = Gauge(
            "streamscore_monitor_watermark_seconds",
            "Newest event time the monitor accepted (slots close behind it).",
            ["stream"],
            registry=registry,
        )
        self.skipped = Counter(
            "streamscore_monitor_skipped_events_total",
            "Records not counted in their slot: late (slot already compared), ahead (far "
            "beyond the watermark); unknown_schema: features skipped (another model input); "
            "canary: score and outcome skipped (a canary decided; its inputs count).",
            ["stream", "reason"],
            registry=registry,
        )
        self.state_saves = Counter(
            "streamscore_monitor_state_saves_total",
            "Saves of the monitor state and alert marks to Redis, by outcome (ok, error).",
            ["stream", "outcome"],
            registry=registry,
        )


class RetrainerMetrics:
    """Metrics of the retrainer (labels: streams, closed sets of causes and outcomes)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.records = Counter(
            "streamscore_retrainer_records_total",
            "Records read from alerts.drift and examples.labelled, by what they were: "
            "alert (retrain_trigger of the stream), rollback (the canary judge's), examples "
            "(primary, of the stream), other (another stream, kind or revision), refused "
            "(broke its contract: counted, skipped).",
            ["stream", "kind"],
            registry=registry,
        )
        self.decisions = Counter(
            "streamscore_retrainer_triggers_total",
            "Trigger decisions with a cause, by cause (alert, examples, schedule) and whether "
            "it trained (started) or was held (min_interval, running).",
            ["stream", "cause", "result"],
            registry=registry,
        )
        self.trainings = Counter(
            "streamscore_retrainer_trainings_total",
            "Finished trainings by outcome: ok (registered and handed over), handoff_failed, "
            "no_data, gate_failed, refused, error.",
            ["stream", "outcome"],
            registry=registry,
        )
        self.new_examples = Gauge(
            "streamscore_retrainer_new_examples",
            "Primary labelled examples since the last successful training started.",
            ["stream"],
            registry=registry,
        )
        self.running = Gauge(
            "streamscore_retrainer_training_running",
            "1 while a training runs.",
            ["stream"],
            registry=registry,
        )
        self.late_verdicts = Counter(
            "streamscore_late_judge_verdicts_total",
            "Promotions judged again on their matured canary cohort, by verdict: rolled_back "
            "(realised precision clearly below the replaced model's: the store rolled back), "
            "kept, too_few (flagged events), no_cohort (promoted without a canary).",
            ["stream", "verdict"],
            registry=registry,
        )
