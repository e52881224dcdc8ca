"""Drift monitoring of the scored-event log: the pure core of ``streamscore monitor``.

Modules, one concept each:

* :mod:`.plan`: per stream, which signals and segments are watched and how
  they are compared (the watch plans, with the reasons for what is left out);
* :mod:`.registry`: detector kinds by name, thresholds corrected for the
  number of tests;
* :mod:`.slots`: event-time slots and the per-partition watermark;
* :mod:`.segments`: bounded segment ids from entity keys;
* :mod:`.comparison`: each slot against the same slot on earlier days,
  over-dispersion, detectors, confirmation, re-baselining, evidence;
* :mod:`.watch`: one stream's state, scored events in, detections out;
* :mod:`.alerting`: incidents, cooldowns, the rate cap and the retraining
  trigger, as ``alerts.drift`` records.
"""
