"""The jobkit command line: local stack, clients, runs and the demo."""
