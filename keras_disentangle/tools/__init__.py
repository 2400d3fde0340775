"""Commands that measure or drive the rest: `bench/` (throughput benchmark), `demo` (the demo
pictures), `demo_timer` (times `make demo`'s phases) and `loadtest` (the browser demo under load).
"""
