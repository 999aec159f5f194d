"""The SpaceTraders HTTP client: typed calls, one shared rate limiter, typed errors."""
