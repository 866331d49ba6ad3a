"""Security: keys, signatures (RFC 9421), replay protection, TLS, field encryption, roles and the
tamper-evident audit log. Not built yet (the security issue); today inbound systems can be held
to a bearer token (``inbound.token``) and nothing else."""
