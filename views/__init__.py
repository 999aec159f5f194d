"""Ways to watch factories from the database: a live terminal tree, a web dashboard and
Prometheus metrics. They only read, so they show any process's factories."""
