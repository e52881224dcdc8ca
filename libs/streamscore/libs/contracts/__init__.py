"""Message contracts: events, decisions, labels and DLQ records.

The JSON Schema files under ``schemas/`` are the source of truth; the msgspec
Structs here mirror the latest version of each (``tests/contract`` proves it).
Modules, one concept each:

* :mod:`.events`, :mod:`.decisions`, :mod:`.labels`, :mod:`.dlq`: the message types;
* :mod:`.codec`: ``decode`` (the hot path, raises only ``ContractError``) and ``encode``;
* :mod:`.errors`: ``ContractError`` and the reason codes;
* :mod:`.registry`: topic -> type -> schema file;
* :mod:`.compat` (with :mod:`.canonical`): schema compatibility checks;
* :mod:`.samples`: seeded valid messages for tests and smoke runs.
"""

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.errors import REASONS, ContractError, Reason
from streamscore.libs.contracts.registry import CONTRACTS, Contract, contract_for, dlq_topic

__all__ = [
    "CONTRACTS",
    "REASONS",
    "Contract",
    "ContractError",
    "Reason",
    "contract_for",
    "decode",
    "dlq_topic",
    "encode",
]
