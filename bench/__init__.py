"""csvboard benchmark: ingestion throughput against floors and a peer, memory, API latency.

Run ``python -m bench.run --help``; see README.md, section "Benchmark".
"""
