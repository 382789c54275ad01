"""Durable call records in PostgreSQL: Asterisk's queue_log and hotline's own decisions joined
into one row per call and one per queue visit, and the reports and stories read from them."""
