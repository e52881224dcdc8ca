"""Pure building blocks of streamscore: no network loops, no clients built at import."""
