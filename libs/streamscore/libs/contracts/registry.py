"""The one table of contracts: topic -> message type -> schema file and version.

Topic names come from :mod:`streamscore.libs.topics` (declared once there).

>>> contract_for("events.transactions").schema_id
'transaction/1'
>>> contract_for("decisions.sensors").type.__name__
'SensorDecision'
>>> contract_for(Chargeback).topic
'labels.chargebacks'
>>> dlq_topic("events.logins")
'dlq.events.logins'
>>> schema_path(contract_for("login")).relative_to(schemas_dir()).as_posix()
'events/login/v1.json'
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.base import Message
from streamscore.libs.contracts.decisions import (
    ClickDecision,
    LoginDecision,
    SensorDecision,
    TransactionDecision,
)
from streamscore.libs.contracts.dlq import DlqRecord
from streamscore.libs.contracts.events import Click, Login, SensorReading, Transaction
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.contracts.features import (
    ClickFeatures,
    LoginFeatures,
    SensorFeatures,
    TransactionFeatures,
)
from streamscore.libs.contracts.labels import AccountTakeover, Chargeback, Conversion, Failure
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, LABELLED_EXAMPLES_TOPIC, STREAMS, dlq_topic

__all__ = [
    "CONTRACTS",
    "SCHEMAS_DIR_ENV",
    "Contract",
    "UnknownContractError",
    "contract_for",
    "dlq_topic",
    "load_schema",
    "schema_path",
    "schema_versions",
    "schemas_dir",
]

Kind = Literal["events", "features", "decisions", "labels", "log", "alerts", "dlq"]
KINDS: Final[tuple[Kind, ...]] = (
    "events",
    "features",
    "decisions",
    "labels",
    "log",
    "alerts",
    "dlq",
)
#: Environment variable that points at another ``schemas/`` directory.
SCHEMAS_DIR_ENV: Final = "STREAMSCORE_SCHEMAS_DIR"
_VERSION_FILE = re.compile(r"^v(?P<version>[1-9][0-9]*)\.json$")


@dataclass(frozen=True)
class Contract:
    """One message contract: its schema name and version, its Struct and its topic."""

    name: str
    kind: Kind
    version: int
    type: type[Message]
    #: Kafka topic carrying it (``None`` for DLQ records, which live on every ``dlq.*``).
    topic: str | None
    #: Stream it belongs to (``"transactions"`` ...), ``None`` for DLQ records.
    stream: str | None

    @property
    def schema_id(self) -> str:
        """``"<name>/<version>"``, as written in the DLQ ``schema`` header."""
        return f"{self.name}/{self.version}"


class UnknownContractError(LookupError):
    """No contract has this topic, name, schema id or type."""


def _build() -> tuple[Contract, ...]:
    s = STREAMS
    t, lg = s["transactions"], s["logins"]
    sr, ck = s["sensor_readings"], s["clickstream"]
    return (
        Contract("transaction", "events", 1, Transaction, t.input_topic, t.name),
        Contract("login", "events", 1, Login, lg.input_topic, lg.name),
        Contract("sensor_reading", "events", 1, SensorReading, sr.input_topic, sr.name),
        Contract("click", "events", 1, Click, ck.input_topic, ck.name),
        Contract(
            "transaction_features", "features", 1, TransactionFeatures, t.feature_topic, t.name
        ),
        Contract("login_features", "features", 1, LoginFeatures, lg.feature_topic, lg.name),
        Contract("sensor_features", "features", 1, SensorFeatures, sr.feature_topic, sr.name),
        Contract("click_features", "features", 1, ClickFeatures, ck.feature_topic, ck.name),
        Contract(
            "transaction_decision", "decisions", 1, TransactionDecision, t.decision_topic, t.name
        ),
        Contract("login_decision", "decisions", 1, LoginDecision, lg.decision_topic, lg.name),
        Contract("sensor_decision", "decisions", 1, SensorDecision, sr.decision_topic, sr.name),
        Contract("click_decision", "decisions", 1, ClickDecision, ck.decision_topic, ck.name),
        Contract("chargeback", "labels", 2, Chargeback, t.label_topic, t.name),
        Contract("account_takeover", "labels", 1, AccountTakeover, lg.label_topic, lg.name),
        Contract("failure", "labels", 1, Failure, sr.label_topic, sr.name),
        Contract("conversion", "labels", 1, Conversion, ck.label_topic, ck.name),
        # One log type for the four streams: its topics are every ``scored.<stream>``.
        Contract("scored_event", "log", 2, ScoredEvent, None, None),
        # The label joiner's output, one topic for the four streams (the record says which).
        Contract("labelled_example", "log", 1, LabelledExample, LABELLED_EXAMPLES_TOPIC, None),
        # The monitor's drift incidents and retraining triggers, and the scorers' canary
        # rollbacks (v2), every stream on one topic.
        Contract("drift_alert", "alerts", 2, DriftAlert, DRIFT_ALERT_TOPIC, None),
        Contract("dlq_record", "dlq", 1, DlqRecord, None, None),
    )


#: Every contract of the system.
CONTRACTS: Final[tuple[Contract, ...]] = _build()
_INDEX: Final[dict[object, Contract]] = {
    key: c for c in CONTRACTS for key in (c.name, c.schema_id, c.type, c.topic) if key is not None
}


def contract_for(key: str | type[Message]) -> Contract:
    """The contract of a topic, schema name, schema id (``"transaction/1"``) or Struct type."""
    try:
        return _INDEX[key]
    except KeyError:
        raise UnknownContractError(f"no contract for {key!r}") from None


def schemas_dir() -> Path:
    """The repository's ``schemas/`` directory (``$STREAMSCORE_SCHEMAS_DIR`` overrides it)."""
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    # contracts/ -> libs/ (package) -> streamscore/ -> libs/ (source root) -> repository
    return Path(__file__).resolve().parents[4] / "schemas"


def schema_path(contract: Contract, root: Path | None = None) -> Path:
    """Path of the schema file of ``contract`` at its version."""
    base = schemas_dir() if root is None else root
    return base / contract.kind / contract.name / f"v{contract.version}.json"


def schema_versions(directory: Path) -> list[int]:
    """Versions present in one schema's directory (``v1.json``, ``v2.json`` ...), ascending."""
    found = (_VERSION_FILE.match(p.name) for p in directory.iterdir() if p.is_file())
    return sorted(int(m.group("version")) for m in found if m)


@cache
def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def load_schema(contract: Contract, root: Path | None = None) -> dict[str, Any]:
    """The parsed JSON Schema of ``contract`` (cached per path; do not mutate)."""
    return _load(schema_path(contract, root))
