-- A retried create names its request with an Idempotency-Key; the key is kept per person (the
-- request_key column holds the person and a digest of the whole key), and the digest of what was
-- asked, so the same key with another body is refused rather than answered with the first order.
ALTER TABLE work_orders ADD COLUMN request_digest text;
