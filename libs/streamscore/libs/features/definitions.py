"""The features of the four streams, declared once.

Transactions carry the baseline features of the fraud-detection handbook with
its exact definitions (customer counts and mean amounts over 1, 7 and 30 days
including the current transaction; terminal counts and fraud risk over 1, 7
and 30 days shifted back by a 7-day delay, 0 when empty) plus what a fraud
team adds: the amount's z-score against the customer's 30-day history, the
time since the customer's previous transaction and distinct terminals per day.

The model input of a stream is ``model_features(stream)``: its event features,
then its groups' features, in declaration order. ``feature_schema_hash`` of
that list is what a model manifest must match.

>>> model_features("transactions")[:3]
['tx_amount', 'tx_during_weekend', 'tx_during_night']
>>> len(feature_schema_hash("transactions"))
64
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from streamscore.libs.features.spec import (
    DAY,
    HOUR,
    MINUTE,
    Entity,
    EventFeature,
    FeatureGroup,
    WindowedFeature,
)

CUSTOMER = Entity("customer", "customer_id", "A card holder (one card per customer).")
TERMINAL = Entity("terminal", "terminal_id", "A payment terminal of a merchant.")
ACCOUNT = Entity("account", "account_id", "A user account that logs in.")
LOGIN_IP = Entity("login_ip", "ip", "A source IP address of logins.")
MACHINE = Entity("machine", "machine_id", "A monitored machine (asset).")
SENSOR = Entity("sensor", "sensor_id", "One sensor of a machine.")
WEB_USER = Entity("web_user", "user_id", "A visitor of the web shop.")
SESSION = Entity("session", "session_id", "One browsing session.")

ENTITIES = (CUSTOMER, TERMINAL, ACCOUNT, LOGIN_IP, MACHINE, SENSOR, WEB_USER, SESSION)

#: The handbook's delay between a transaction and when its label is known.
LABEL_DELAY_S = 7 * DAY

EVENT_FEATURES: dict[str, tuple[EventFeature, ...]] = {
    "transactions": (
        EventFeature("tx_amount", "The transaction amount."),
        EventFeature("tx_during_weekend", "1 if the transaction is on a Saturday or Sunday."),
        EventFeature("tx_during_night", "1 if the transaction's hour is <= 6 (handbook)."),
    ),
    "logins": (
        EventFeature("login_success", "1 if the attempt succeeded."),
        EventFeature("login_hour", "Hour of day (UTC) of the attempt."),
    ),
    "sensor_readings": (
        EventFeature("reading_value", "The reading; missing readings are missing, never 0."),
    ),
    "clickstream": (
        EventFeature("click_is_purchase", "1 if the action is a purchase."),
        EventFeature("click_is_add_to_cart", "1 if the action is add-to-cart."),
    ),
}


#: Inputs of windowed features that are not event fields, and how processors derive them.
DERIVED_INPUTS: dict[str, dict[str, str]] = {
    "transactions": {"fraud": "1 for a transaction with a reported, unreversed chargeback"},
    "logins": {"failed": "1 - success"},
    "sensor_readings": {"missing": "1 if value is null, else 0"},
    "clickstream": {
        "gap_s": "seconds since the session's previous event",
        "is_purchase": "1 if action == 'purchase'",
        "is_add_to_cart": "1 if action == 'add_to_cart'",
    },
}


def _counts_and_means(prefix: str, field: str, days: tuple[int, ...]) -> list[WindowedFeature]:
    out = []
    for d in days:
        out.append(
            WindowedFeature(
                f"{prefix}_nb_tx_{d}d",
                "count",
                d * DAY,
                description=f"Transactions in the last {d} day(s), this one included.",
            )
        )
        out.append(
            WindowedFeature(
                f"{prefix}_avg_amount_{d}d",
                "mean",
                d * DAY,
                field,
                description=f"Mean amount over the last {d} day(s), this one included.",
            )
        )
    return out


GROUPS: tuple[FeatureGroup, ...] = (
    FeatureGroup(
        "customer_tx",
        "transactions",
        CUSTOMER,
        (
            *_counts_and_means("customer", "amount", (1, 7, 30)),
            WindowedFeature(
                "customer_amount_zscore_30d",
                "zscore",
                30 * DAY,
                "amount",
                description="Amount z-score against the previous 30 days.",
            ),
            WindowedFeature(
                "customer_secs_since_last_tx",
                "since_last",
                30 * DAY,
                description="Seconds since the customer's previous transaction.",
            ),
            WindowedFeature(
                "customer_distinct_terminals_1d",
                "distinct",
                DAY,
                "terminal_id",
                description="Distinct terminals used in the last day.",
            ),
        ),
        max_age_s=30 * DAY,
        description="Spending behaviour of the card holder.",
    ),
    FeatureGroup(
        "terminal_risk",
        "transactions",
        TERMINAL,
        tuple(
            f
            for d in (1, 7, 30)
            for f in (
                WindowedFeature(
                    f"terminal_nb_tx_{d}d",
                    "count",
                    d * DAY,
                    delay_s=LABEL_DELAY_S,
                    empty="zero",
                    description=f"Transactions over {d} day(s), 7 days ago.",
                ),
                WindowedFeature(
                    f"terminal_risk_{d}d",
                    "label_rate",
                    d * DAY,
                    "fraud",
                    delay_s=LABEL_DELAY_S,
                    empty="zero",
                    description=f"Frauds known by now / transactions over {d} "
                    "day(s), 7 days ago (0 when empty).",
                ),
            )
        ),
        max_age_s=40 * DAY,
        description="Fraud history of the terminal, shifted back by the label delay.",
    ),
    FeatureGroup(
        "account_logins",
        "logins",
        ACCOUNT,
        (
            WindowedFeature("account_attempts_1h", "count", HOUR),
            WindowedFeature("account_failures_1h", "sum", HOUR, "failed"),
            WindowedFeature("account_distinct_devices_7d", "distinct", 7 * DAY, "device_id"),
            WindowedFeature("account_distinct_countries_7d", "distinct", 7 * DAY, "country"),
            WindowedFeature("account_distinct_ips_1d", "distinct", DAY, "ip"),
            WindowedFeature("account_secs_since_last", "since_last", 30 * DAY),
        ),
        max_age_s=30 * DAY,
        description="Velocity and novelty of an account's logins.",
    ),
    FeatureGroup(
        "ip_logins",
        "logins",
        LOGIN_IP,
        (
            WindowedFeature("ip_attempts_10m", "count", 10 * MINUTE),
            WindowedFeature("ip_distinct_accounts_1h", "distinct", HOUR, "account_id"),
            WindowedFeature("ip_failures_1h", "sum", HOUR, "failed"),
        ),
        max_age_s=DAY,
        description="Credential-stuffing signals of a source IP.",
    ),
    FeatureGroup(
        "sensor_stats",
        "sensor_readings",
        SENSOR,
        (
            WindowedFeature("sensor_mean_1h", "mean", HOUR, "value"),
            WindowedFeature("sensor_std_1h", "std", HOUR, "value"),
            WindowedFeature("sensor_min_1h", "min", HOUR, "value"),
            WindowedFeature("sensor_max_1h", "max", HOUR, "value"),
            WindowedFeature("sensor_mean_24h", "mean", DAY, "value"),
            WindowedFeature("sensor_ewma_6h", "ewma", 6 * HOUR, "value"),
            WindowedFeature("sensor_zscore_24h", "zscore", DAY, "value"),
            WindowedFeature("sensor_missing_24h", "sum", DAY, "missing"),
        ),
        max_age_s=HOUR,
        description="Rolling statistics of one sensor.",
    ),
    FeatureGroup(
        "machine_health",
        "sensor_readings",
        MACHINE,
        (
            WindowedFeature("machine_readings_1h", "count", HOUR),
            WindowedFeature("machine_missing_24h", "sum", DAY, "missing"),
        ),
        max_age_s=HOUR,
        description="Reporting health of a machine.",
    ),
    FeatureGroup(
        "session_activity",
        "clickstream",
        SESSION,
        (
            WindowedFeature("session_events_30m", "count", 30 * MINUTE),
            WindowedFeature("session_mean_gap_30m", "mean", 30 * MINUTE, "gap_s"),
            WindowedFeature("session_std_gap_30m", "std", 30 * MINUTE, "gap_s"),
            WindowedFeature("session_distinct_pages_30m", "distinct", 30 * MINUTE, "page"),
            WindowedFeature("session_add_to_cart_30m", "sum", 30 * MINUTE, "is_add_to_cart"),
            WindowedFeature("session_secs_since_last", "since_last", 30 * MINUTE),
        ),
        max_age_s=30 * MINUTE,
        description="What a session did so far, and with which rhythm.",
    ),
    FeatureGroup(
        "user_history",
        "clickstream",
        WEB_USER,
        (
            WindowedFeature("user_sessions_events_7d", "count", 7 * DAY),
            WindowedFeature("user_purchases_30d", "sum", 30 * DAY, "is_purchase"),
        ),
        max_age_s=30 * DAY,
        description="A visitor's longer history.",
    ),
)


def groups(stream: str) -> list[FeatureGroup]:
    """The feature groups of one stream."""
    return [g for g in GROUPS if g.stream == stream]


def model_features(stream: str) -> list[str]:
    """The model input of ``stream``, in order: event features, then group features."""
    names = [f.name for f in EVENT_FEATURES[stream]]
    for g in groups(stream):
        names += g.feature_names
    return names


def hash_feature_names(names: Sequence[str], dtype: str = "float32") -> str:
    """SHA-256 of ordered feature names and their dtype (one ``name:dtype`` per line)."""
    return hashlib.sha256("\n".join(f"{n}:{dtype}" for n in names).encode()).hexdigest()


def feature_schema_hash(stream: str) -> str:
    """The hash of a stream's model input: what a model manifest must match."""
    return hash_feature_names(model_features(stream))
