"""The gates' cost and the performance gate's noise, on examples/hello, through the real CLI:
`python -m bench.gates` (see bench/README.md, section `gates`)."""
