"""The ground floor: settings, the operator policy, numbers, YAML positions, Redis key names and
the pipelined client, call records and logging. Imports no other package of the project."""
