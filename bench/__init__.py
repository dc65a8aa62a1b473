"""Load scripts; results in bench/RESULTS.md."""
