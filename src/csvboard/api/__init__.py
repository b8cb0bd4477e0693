"""HTTP plumbing shared by the domain routers: problems, request context, auth, dependencies."""
