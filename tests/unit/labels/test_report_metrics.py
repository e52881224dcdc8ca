"""The realised-performance gauges follow the latest report; model versions that leave go."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streamscore.libs.labels.realised import Figures, Report
from streamscore.services.metrics import JoinerMetrics
from streamscore.services.realised_report import ReportExporter


def figures(version: str, status: str, auc: float) -> Figures:
    return Figures(
        model_version=version, status=status, examples=100, scored=98, positives=7,  # type: ignore[arg-type]
        auc=auc, average_precision=0.5, card_precision_at_k=0.3, precision=[0.6, None],
        recall=[0.8, 0.1], label_completeness=1.0 if status == "realised" else 0.4, days=7,
    )  # fmt: skip


def test_gauges_follow_the_report() -> None:
    registry = CollectorRegistry()
    exporter = ReportExporter(JoinerMetrics(registry), "transactions")
    report = Report("transactions", "2026-05-01T00:00:00+00:00", 120.0, 100, [0.35, 0.8])
    report.summary = [figures("m-1", "realised", 0.91), figures("m-1", "estimate", 0.88)]
    exporter.export(report)

    def value(version: str, metric: str, cohort: str) -> float | None:
        labels = {"stream": "transactions", "model_version": version, "metric": metric,
                  "cohort": cohort}  # fmt: skip
        return registry.get_sample_value("streamscore_realised_performance", labels)

    assert value("m-1", "auc", "realised") == 0.91
    assert value("m-1", "label_completeness", "estimate") == 0.4
    assert value("m-1", "precision_at_t1", "realised") == 0.6
    assert value("m-1", "precision_at_t2", "realised") is None  # no alert at 0.8: no series
    report.summary = [figures("m-2", "realised", 0.93)]
    exporter.export(report)
    assert value("m-1", "auc", "realised") is None and value("m-2", "auc", "realised") == 0.93
