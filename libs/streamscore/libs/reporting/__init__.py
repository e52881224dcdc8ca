"""What ``streamscore report`` computes from a run, without I/O (:mod:`.aggregate`).

The service :mod:`streamscore.services.report` reads the scored-event log,
drift alerts, realised reports and bench results and draws the plots.
"""
