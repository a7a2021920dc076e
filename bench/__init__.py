"""Benchmarks (`make bench`): not part of the test suite; writes bench/RESULTS.md and plots."""
