"""`ymera serve`: the read-only HTTP API, the live dashboard and /metrics, over projections of the log.

Nothing here writes: every answer is a fold of the event log (rebuilt from the SQLite store at
start, then followed live on the stream), so an instance can be killed or doubled at will.
"""
