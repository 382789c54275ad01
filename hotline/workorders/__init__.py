"""Complaint work orders carrying the caller's tier: filed from the agent's screen or by other
systems, dispatched and answered by priority and deadline, filtered and exported by tier."""
