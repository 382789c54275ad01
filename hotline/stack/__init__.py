"""Running the real parts on one machine for `make up`, the end-to-end tests and benchmarks:
Asterisk in its sid root, SIPp softphones, processes tracked and stopped by PID.
Production runs these under its own service manager."""
