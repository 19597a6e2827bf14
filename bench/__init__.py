"""`make bench`: the benchmarks of perf.md, each as a ratio against a baseline in the same run."""
