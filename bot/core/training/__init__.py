"""Training runs: the queue of runs, planning one, the worker process that trains it and
its supervisor, how a run ends, its events and progress, and the scheduler."""
