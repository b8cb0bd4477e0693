"""HTTP plumbing shared by the domain routers: ``context`` (trace ids, authentication, limits),
``deps`` (the ``Annotated`` dependencies), ``problems`` and ``schemas`` (problem+json),
``idempotency`` (Idempotency-Key), ``caching`` (ETag / 304), ``metrics``; and ``health``, the
one route that belongs to no domain.
"""
