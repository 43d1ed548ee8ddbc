"""bench/history: the embedded metrics store after 24 h of simulated traffic for 10 apps."""
