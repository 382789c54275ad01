"""AMI bridge to Asterisk (queues, desks, events)."""
