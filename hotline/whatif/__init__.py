"""What if: each level's service predicted before a policy or roster change goes live.

A discrete-event simulation of the hotline's queues as this project configures Asterisk
(`engine`), fed by a traffic file or the call records (`traffic`), over the policy's levels and
the roster's desks (`setup`), summed up with confidence intervals (`summary`), checked against
queueing theory (`theory`), compared on common random numbers and searched for staffing (`run`).
"""
