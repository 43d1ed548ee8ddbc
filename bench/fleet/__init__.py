"""The fleet benchmark: deploys and warm rollbacks through two lb hosts under load, deploy
time over 1, 2, 4 and 8 app hosts, and the skew between lb hosts switching, on a fleet of
network namespaces on this machine. `python -m bench.fleet`."""
