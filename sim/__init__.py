"""A local SpaceTraders-compatible server for the demo, the tests and the benchmarks.

It speaks the real API's paths, envelopes, status codes and error codes, follows the
travel and fuel formulas, and runs a small economy in which exporters make goods only
while their imports are stocked. It is faithful where the bot depends on the game and
simple everywhere else; README.md says what it models and what it leaves out.
"""
