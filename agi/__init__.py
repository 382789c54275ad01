"""FastAGI and classic AGI call entry."""
