"""The serving benchmarks' parts (bench/serve_bench.py, bench/deploy_bench.py): the site and its
processes, deploying through the product, the load, the gateway alone before a stub, the seed."""
