"""Monitoring: Prometheus metrics, adapter and target health, the ops dashboard. Not built yet
(the monitoring issue); today ``/healthz``, ``/readyz``, ``/v1/stats`` and the trace of every
message (``/v1/messages/{id}``, ``jghub trace``) are served by :mod:`hub.api`."""
