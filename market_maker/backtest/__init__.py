"""The backtester: the unchanged OrderManager on the simulator's core, in simulated time."""
