"""SMS to callers: jobs recorded durably in a Redis Stream, sent by workers through a gateway."""
