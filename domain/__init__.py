"""The pure core of goods-factory: game rules, the planner and the factory's task graph.

Nothing in this package performs I/O, starts threads or reads the clock; callers pass
times and data in, which keeps every rule testable by calling it.
"""
