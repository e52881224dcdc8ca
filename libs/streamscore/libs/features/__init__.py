"""Feature declarations: one source for the online processors, the offline path and Feast."""
